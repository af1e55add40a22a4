"""Where read documents leave the daemon: group commit of outcomes, then the file moves.

Results + status of a group of documents go in one transaction (group commit); only then do
their files move to processed/ or failed/. Where a moved file went is recorded with the next
transaction, whichever thread runs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, delete
from sqlalchemy.orm import Session

from ocrd.batching import Batcher
from ocrd.config import Settings
from ocrd.intake import move_to_failed, move_to_processed
from ocrd.logsafe import printable
from ocrd.service.metrics import Counters
from ocrd.service.outage import DatabaseHealth, is_outage
from ocrd.store import Document, DocumentStatus, Store, documents
from ocrd.store.claims import Claim
from ocrd.types import DocumentReading

log = logging.getLogger("ocrd.service")

COMMIT_BATCH = 64  # documents finished per transaction


@dataclass
class Outcome:
    """A read document on its way to the store: a reading, or the reason it failed."""

    claim: Claim
    path: Path
    reading: DocumentReading | None
    reason: str | None
    seconds: float
    requeue: bool = False  # changed while being read: forget the row, let the file settle again


@dataclass
class Move:
    """A file whose outcome is committed and which must leave the inbox."""

    doc_id: int | None
    path: Path
    status: str | None
    error: str | None


class Outbox:
    """Commits outcomes in groups (committer thread) and moves their files out of the inbox."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        counters: Counters,
        *,
        release: Callable[[Path], None],
        finished: Callable[[list[Outcome]], None],
        health: DatabaseHealth | None = None,
        stopping: threading.Event | None = None,
        settle_again: Callable[[Path], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.counters = counters
        self.release = release  # the inbox may offer this path again
        self.finished = finished  # outcomes no longer in flight (committed or given up)
        self.health = health or DatabaseHealth()
        self.stopping = stopping or threading.Event()
        self.settle_again = settle_again or release
        self._placed: list[tuple[int, Path, Path]] = []  # moved files whose rows still say inbox
        self._placed_lock = threading.Lock()
        self.committer: Batcher[Outcome, None] | None = None

    def start(self) -> None:
        # Group commit: outcomes that queue up while one transaction runs share the next.
        self.committer = Batcher(
            self._commit_all, max_batch=COMMIT_BATCH, max_delay=0.002, name="committer"
        )

    def submit(self, outcome: Outcome) -> None:
        assert self.committer is not None, "Outbox.start() first"
        self.committer.submit(outcome)

    @property
    def alive(self) -> bool:
        return self.committer is not None and self.committer.alive

    def close(self, timeout: float) -> None:
        if self.committer is not None:
            self.committer.close(timeout=timeout)

    def _commit_all(self, outcomes: list[Outcome]) -> list[None]:
        self.commit(outcomes)
        return [None] * len(outcomes)

    def commit(self, outcomes: list[Outcome]) -> None:
        """Committer thread: results + status for a group of documents in one transaction
        (group commit), then the file moves. While the database is away the group waits and
        is tried again (back-off); a group that fails otherwise is retried one by one."""
        try:
            self._commit_waiting_out_outages(outcomes)
            committed = outcomes
        except Exception:
            committed = []
            for outcome in outcomes:
                try:
                    self._commit_group([outcome])
                    committed.append(outcome)
                except Exception as exc:
                    # Store unreachable or similar: the claim lapses and the work is redone.
                    self.health.failed(f"committing document {outcome.claim.id}", exc)
        moves = []
        for o in committed:
            if o.requeue:
                log.info("%s changed while being read; settling again", printable(o.path))
                self.settle_again(o.path)
            elif o.reading is not None:
                self.counters.count("done", o.reading.pages)
                log.info(
                    "done %s: %d page(s), %d field(s) in %.2f s",
                    o.path.name, o.reading.pages, len(o.reading.fields), o.seconds,
                )  # fmt: skip
                moves.append(Move(o.claim.id, o.path, DocumentStatus.DONE.value, None))
            else:
                self.counters.count("failed")
                log.warning("failed %s: %s", o.path.name, o.reason)
                if o.path.exists():
                    moves.append(Move(o.claim.id, o.path, DocumentStatus.FAILED.value, o.reason))
        try:
            self.move_out(moves)
        finally:
            self.finished(outcomes)

    def _commit_waiting_out_outages(self, outcomes: list[Outcome]) -> None:
        while True:
            wait = self.health.seconds_to_next_try()
            if wait and self.stopping.wait(wait):
                raise RuntimeError("stopping while the database is away")  # claims lapse
            try:
                self._commit_group(outcomes)
            except Exception as exc:
                if not is_outage(exc) or self.stopping.is_set():
                    raise
                self.health.failed("committing results", exc)
                continue
            self.health.ok()
            return

    def _commit_group(self, outcomes: list[Outcome]) -> None:
        with self.store.session() as session:
            self.record_places(session)
            read = [
                (o.claim.id, o.reading) for o in outcomes if o.reading is not None and not o.requeue
            ]
            documents.finish_many(session, read)
            for o in outcomes:
                if o.requeue:  # never read: the file gets a new row once it has settled
                    session.execute(delete(Document).where(Document.id == o.claim.id))
                elif o.reading is None:
                    documents.fail(session, o.claim.id, o.reason or "failed")

    def move_out(self, moves: list[Move]) -> None:
        """Move files whose outcome is committed; where they went is recorded with the next
        transaction (`record_places`)."""
        settings = self.settings
        placed = []
        for m in moves:
            try:
                if m.status == DocumentStatus.FAILED.value:
                    target: Path | None = move_to_failed(
                        m.path, settings.failed, m.error or "failed"
                    )
                elif settings.on_done == "delete":
                    m.path.unlink()
                    target = None
                else:
                    target = move_to_processed(m.path, settings.processed, inbox=settings.inbox)
            except FileNotFoundError:
                log.debug("%s already moved by another worker", printable(m.path))
                continue
            except OSError as exc:
                # Left in the inbox with its outcome committed: the next rescan moves it.
                self.health.error(f"moving {printable(m.path)}", exc)
                continue
            finally:
                self.release(m.path)
            if target is not None and m.doc_id is not None:
                placed.append((m.doc_id, m.path, target))
        with self._placed_lock:
            self._placed += placed

    def record_places(self, session: Session) -> None:
        """Write where moved files went, in whatever transaction comes next (a crash before
        that only leaves a row pointing at the inbox path of a file that has left it)."""
        with self._placed_lock:
            placed, self._placed = self._placed, []
        if not placed:
            return
        table = Document.__table__
        statement = (  # one executemany for them all (not an ORM statement per file)
            table.update()
            .where(table.c.id == bindparam("doc_id"), table.c.path == bindparam("was"))
            .values(path=bindparam("now"))
        )
        params = [{"doc_id": i, "was": str(old), "now": str(new)} for i, old, new in placed]
        try:
            session.execute(statement, params)
        except Exception:
            with self._placed_lock:
                self._placed = placed + self._placed
            raise

    def flush_places(self) -> None:
        if self._placed:
            with self.store.session() as session:
                self.record_places(session)
