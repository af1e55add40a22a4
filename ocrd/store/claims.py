"""Claiming documents for the daemon: each pending document is read by exactly one worker.

PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks rows no other transaction holds, so
several daemons on several machines share one queue without waiting on each other.
SQLite: one ``UPDATE ... WHERE status = 'pending' ... RETURNING`` statement; SQLite runs it
under its single write lock, so it is an atomic compare-and-set.

A claimed row is ``processing`` with ``claimed_by`` = the worker id and a ``heartbeat_at`` the
worker renews while it works. A row whose heartbeat is older than ``stale_after`` belongs to a
dead worker and is claimed again. On start-up a worker also frees rows held by dead processes
on its own host (worker ids are ``host:pid``), so a restart after kill -9 redoes their work at
once instead of after the lease. A document claimed ``max_attempts`` times without finishing
(it keeps killing its worker) is failed instead of being handed out forever.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from ocrd.store.engine import Store
from ocrd.store.models import Document, DocumentStatus, utcnow

DEFAULT_STALE_AFTER = timedelta(seconds=60)
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    """What a worker needs to process one claimed document."""

    id: int
    path: str
    sha256: str
    attempts: int


def _claimable(cutoff: datetime):  # noqa: ANN202 (SQL expression)
    return or_(
        Document.status == DocumentStatus.PENDING.value,
        and_(
            Document.status == DocumentStatus.PROCESSING.value,
            or_(Document.heartbeat_at.is_(None), Document.heartbeat_at < cutoff),
        ),
    )


def claim_documents(
    store: Store,
    worker_id: str,
    limit: int,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> list[Claim]:
    """Claim up to `limit` documents (oldest first) for `worker_id`; [] when none are free."""
    if limit <= 0:
        return []
    now = utcnow()
    values = {
        "status": DocumentStatus.PROCESSING.value,
        "claimed_by": worker_id,
        "heartbeat_at": now,
        "started_at": now,
        "attempts": Document.attempts + 1,
    }
    columns = (Document.id, Document.path, Document.sha256, Document.attempts)
    with store.session() as session:
        if store.dialect == "postgresql":
            ids = session.scalars(
                select(Document.id)
                .where(_claimable(now - stale_after))
                .order_by(Document.received_at, Document.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not ids:
                return []
            rows = session.execute(
                update(Document).where(Document.id.in_(ids)).values(**values).returning(*columns)
            ).all()
        else:
            oldest = (
                select(Document.id)
                .where(_claimable(now - stale_after))
                .order_by(Document.received_at, Document.id)
                .limit(limit)
                .scalar_subquery()
            )
            rows = session.execute(
                update(Document)
                .where(Document.id.in_(oldest), _claimable(now - stale_after))
                .values(**values)
                .returning(*columns)
                .execution_options(synchronize_session=False)
            ).all()
    return sorted((Claim(*row) for row in rows), key=lambda c: c.id)


def heartbeat(store: Store, worker_id: str, document_ids: Iterable[int]) -> int:
    """Renew this worker's claims; returns how many it still holds."""
    ids = list(document_ids)
    if not ids:
        return 0
    return _update_own_claims(store, worker_id, ids, heartbeat_at=utcnow())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _is_dead_local_worker(claimed_by: str, worker_id: str, host: str) -> bool:
    if claimed_by == worker_id:
        return True  # our own id from before a restart (same pid reused, e.g. in a container)
    claim_host, _, pid_text = claimed_by.rpartition(":")
    if claim_host != host or not pid_text.isdigit():
        return False
    return not _pid_alive(int(pid_text))


def release_dead_claims(store: Store, worker_id: str) -> list[int]:
    """Put back to pending the documents held by dead workers of this host (run at start-up)."""
    host = socket.gethostname()
    with store.session() as session:
        held = session.execute(
            select(Document.id, Document.claimed_by).where(
                Document.status == DocumentStatus.PROCESSING.value,
                Document.claimed_by.is_not(None),
            )
        ).all()
        dead = [doc_id for doc_id, owner in held if _is_dead_local_worker(owner, worker_id, host)]
        if dead:
            _set_pending(session, dead)
    return dead


def release_claims(store: Store, worker_id: str, document_ids: Iterable[int]) -> int:
    """Give back claims this worker will not finish (shutdown before work started)."""
    ids = list(document_ids)
    if not ids:
        return 0
    return _update_own_claims(
        store,
        worker_id,
        ids,
        status=DocumentStatus.PENDING.value,
        claimed_by=None,
        heartbeat_at=None,
        attempts=Document.attempts - 1,
    )


def _update_own_claims(store: Store, worker_id: str, ids: list[int], **values: object) -> int:
    """Update the documents of `ids` that this worker still holds; returns how many."""
    with store.session() as session:
        result = session.execute(
            update(Document)
            .where(
                Document.id.in_(ids),
                Document.claimed_by == worker_id,
                Document.status == DocumentStatus.PROCESSING.value,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0


def _set_pending(session: Session, ids: list[int]) -> None:
    session.execute(
        update(Document)
        .where(Document.id.in_(ids), Document.status == DocumentStatus.PROCESSING.value)
        .values(status=DocumentStatus.PENDING.value, claimed_by=None, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    )


def queue_counts(store: Store) -> dict[str, int]:
    """Documents per status (for STATUS= and metrics)."""
    from sqlalchemy import func

    with store.session() as session:
        rows = session.execute(
            select(Document.status, func.count()).group_by(Document.status)
        ).all()
    counts = {status.value: 0 for status in DocumentStatus}
    counts.update({status: count for status, count in rows})
    return counts
