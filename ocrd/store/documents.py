"""Document lifecycle: register -> start -> finish | fail.

Every function works inside the caller's transaction (``with store.session() as s:``) and
never commits, so a caller can combine steps atomically. ``finish`` replaces a document's
results and marks it done in that one transaction: a redo after a crash never duplicates rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ocrd.store.models import Document, DocumentStatus, Result, utcnow
from ocrd.types import DocumentReading, FieldReading

MAX_ERROR_LENGTH = 2000
HASH_CHUNK = 1 << 20
# Rows go in through the Core table: the ORM's bulk insert costs ~20% more per row (measured).
RESULTS = Result.__table__


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


def digest_file(path: Path) -> FileDigest:
    """sha256 and size of a regular file, read once in chunks (a FIFO or device raises
    `ocrd.files.NotRegularFileError`, an OSError, instead of blocking or reading forever)."""
    from ocrd.files import open_regular

    sha = hashlib.sha256()
    size = 0
    with open_regular(path) as handle:
        while chunk := handle.read(HASH_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(sha.hexdigest(), size)


def find_canonical(session: Session, sha256: str) -> Document | None:
    """The one non-duplicate document with this content, if any."""
    return session.scalars(
        select(Document).where(
            Document.sha256 == sha256, Document.status != DocumentStatus.DUPLICATE
        )
    ).one_or_none()


def register(
    session: Session,
    path: Path | str,
    digest: FileDigest,
    *,
    original_name: str | None = None,
    reprocess: bool = False,
    received_at: datetime | None = None,
) -> Document:
    """Record a received file and return the row that stands for it.

    New content -> a new ``pending`` canonical document. Content seen before -> a new
    ``duplicate`` row pointing at the canonical one (``duplicate_of``), except when the
    canonical one failed, or is done and ``reprocess`` is true: then the canonical document
    itself is reset to ``pending`` at the new path (its results are replaced by ``finish``).
    Content being processed right now is always recorded as a duplicate.
    """
    path = str(path)
    name = original_name or Path(path).name
    now = received_at or utcnow()
    canonical = find_canonical(session, digest.sha256)
    if canonical is None:
        document = Document(
            path=path, original_name=name, sha256=digest.sha256, size=digest.size,
            status=DocumentStatus.PENDING, attempts=0, received_at=now,
        )  # fmt: skip
        try:
            with session.begin_nested():  # another worker may insert the same content now
                session.add(document)
            return document
        except IntegrityError:
            canonical = find_canonical(session, digest.sha256)
            if canonical is None:
                raise
    if canonical.status == DocumentStatus.FAILED or (
        reprocess and canonical.status == DocumentStatus.DONE
    ):
        _reset_to_pending(canonical, path, name, now)
        return canonical
    duplicate = Document(
        path=path, original_name=name, sha256=digest.sha256, size=digest.size,
        status=DocumentStatus.DUPLICATE, attempts=0, received_at=now, finished_at=now,
        duplicate_of=canonical.id, media_type=canonical.media_type, pages=canonical.pages,
    )  # fmt: skip
    session.add(duplicate)
    session.flush()
    return duplicate


def _reset_to_pending(document: Document, path: str, name: str, now: datetime) -> None:
    document.path = path
    document.original_name = name
    document.status = DocumentStatus.PENDING
    document.error = None
    document.received_at = now
    document.started_at = None
    document.finished_at = None
    document.claimed_by = None
    document.heartbeat_at = None


def _get(session: Session, document_id: int) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise LookupError(f"no document with id {document_id}")
    return document


def start(session: Session, document_id: int, *, worker: str | None = None) -> Document:
    """Mark a document as being processed (one more attempt) by ``worker``."""
    document = _get(session, document_id)
    now = utcnow()
    document.status = DocumentStatus.PROCESSING
    document.attempts = (document.attempts or 0) + 1
    document.started_at = now
    document.finished_at = None
    document.error = None
    document.claimed_by = worker
    document.heartbeat_at = now
    session.flush()
    return document


def release(session: Session, document_id: int) -> Document:
    """Put a document back to ``pending`` without counting the attempt against the file
    (the worker stopped or could not load its models)."""
    document = _get(session, document_id)
    document.status = DocumentStatus.PENDING
    document.attempts = max(0, (document.attempts or 0) - 1)
    document.started_at = None
    document.claimed_by = None
    document.heartbeat_at = None
    session.flush()
    return document


def result_row(document_id: int, reading: FieldReading, created_at: datetime) -> dict:
    """The ``results`` row (as insert parameters) for one field reading."""
    return {
        "document_id": document_id,
        "page": reading.page,
        "x": reading.box.x,
        "y": reading.box.y,
        "w": reading.box.w,
        "h": reading.box.h,
        "text": reading.text,
        "confidence": min(1.0, max(0.0, float(reading.confidence))),
        "kind": reading.kind,
        "model": reading.model,
        "digits": [digit.as_dict() for digit in reading.digits],
        "needs_review": bool(reading.needs_review),
        "review_reason": reading.review_reason,
        "template": reading.template,
        "field": reading.field_name,
        "created_at": created_at,
    }


def finish(session: Session, document_id: int, reading: DocumentReading) -> Document:
    """Replace the document's results with ``reading`` and mark it done (`finish_many` for
    one document); LookupError when it is missing."""
    _get(session, document_id)
    finish_many(session, [(document_id, reading)])
    return _get(session, document_id)


def finish_many(session: Session, readings: list[tuple[int, DocumentReading]]) -> None:
    """`finish` for a group of documents in three statements (results deleted, inserted,
    documents marked done: executemany each) instead of an ORM load and flush per document;
    the daemon's group commit. LookupError when a document is missing."""
    if not readings:
        return
    now = utcnow()
    ids = [document_id for document_id, _ in readings]
    session.execute(delete(Result).where(Result.document_id.in_(ids)))
    rows = [result_row(i, field, now) for i, reading in readings for field in reading.fields]
    if rows:
        session.execute(RESULTS.insert(), rows)
    table = Document.__table__
    done = table.update().where(table.c.id == bindparam("doc_id"))
    done = done.values(
        media_type=bindparam("media_type"), pages=bindparam("pages"), notes=bindparam("notes"),
        status=DocumentStatus.DONE.value, error=None, finished_at=now, claimed_by=None,
    )  # fmt: skip
    params = [
        {"doc_id": i, "media_type": r.media_type, "pages": r.pages, "notes": list(r.notes) or None}
        for i, r in readings
    ]
    updated = session.execute(done, params).rowcount
    if session.get_bind().dialect.supports_sane_multi_rowcount and updated != len(readings):
        raise LookupError(f"{len(readings) - updated} of documents {ids} not found")
    finished = set(ids)
    for document in list(session.identity_map.values()):  # loaded rows are stale now
        if isinstance(document, Document) and document.id in finished:
            session.expire(document)


def fail(session: Session, document_id: int, reason: str) -> Document:
    """Mark a document failed with a one-line ``reason`` (kept short for the user). Results of
    an earlier reading are dropped: only done documents have results."""
    document = _get(session, document_id)
    session.execute(delete(Result).where(Result.document_id == document_id))
    line = " ".join(str(reason).split()) or "unknown error"
    document.status = DocumentStatus.FAILED
    document.error = line[:MAX_ERROR_LENGTH]
    document.finished_at = utcnow()
    document.claimed_by = None
    session.flush()
    session.expire(document, ["results"])
    return document
