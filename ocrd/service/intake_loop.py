"""Intake thread of the daemon: settled inbox files -> rows in the store."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import and_, insert, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ocrd.files import NotRegularFileError
from ocrd.intake import Inbox, relative_name
from ocrd.logsafe import Once, printable
from ocrd.service.outage import is_outage
from ocrd.service.outbox import Move
from ocrd.store import Document, DocumentStatus, documents
from ocrd.store.models import utcnow

if TYPE_CHECKING:
    from ocrd.service.daemon import Daemon

log = logging.getLogger("ocrd.service")

TICK_SECONDS = 0.25
DUPLICATE_RECHECK_SECONDS = 2.0
INTAKE_BATCH = 64  # files registered per transaction
INTAKE_PAUSE_SECONDS = 0.05
HASHED_KEPT = 50_000  # files hashed and not yet read, remembered (a bound, never reached)
_IN_FLIGHT = (DocumentStatus.PENDING.value, DocumentStatus.PROCESSING.value)


@dataclass
class _Decision:
    path: Path
    outcome: str  # queued | wait | skip | move | gone
    doc_id: int | None = None
    status: str | None = None
    error: str | None = None
    repeats: str = "its original"  # a duplicate: "#id path" of the document it repeats


class Intake:
    """Settled inbox files -> rows in the store (or straight to processed/ for duplicates)."""

    def __init__(self, daemon: Daemon) -> None:
        settings = daemon.settings
        self.daemon = daemon
        self.inbox = Inbox(
            settings.inbox,
            recursive=settings.recursive,
            ignore=settings.ignore,
            settle_seconds=settings.settle_seconds,
            rescan_seconds=settings.rescan_seconds,
            polling=settings.polling,
            failed=settings.failed,
            symlinks=settings.symlinks,
        )
        self.thread = threading.Thread(target=self._run, name="intake", daemon=True)
        self._later: dict[Path, float] = {}
        self._cannot_read = Once()
        # What intake hashed, by path: (file identity, sha256). The reader skips its own
        # hash of a file whose identity (inode, size, mtime, ctime) has not changed since.
        self.hashed: dict[Path, tuple[tuple[int, int, int, int], str]] = {}

    def start(self) -> None:
        self.inbox.start()
        self.thread.start()

    def stop(self) -> None:
        self.inbox.stop()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        stop = self.daemon.stopping
        while not stop.is_set():
            now = time.monotonic()
            for path, due in list(self._later.items()):
                if due <= now:
                    del self._later[path]
                    self.inbox.release(path)
                    self.inbox.settler.offer(path)
            if not self.daemon.health.available():
                stop.wait(TICK_SECONDS)  # database away: files wait in the inbox
                continue
            ready = self.inbox.poll()
            for start in range(0, len(ready), INTAKE_BATCH):
                if stop.is_set():
                    break
                self.take_in(ready[start : start + INTAKE_BATCH])
                if self.daemon.busy:
                    # SQLite has one writer at a time and its busy handler polls: give the
                    # committer and the claimer a turn, or a big drop starves the reading.
                    stop.wait(INTAKE_PAUSE_SECONDS)
            wait = self.inbox.settler.next_due()
            stop.wait(TICK_SECONDS if wait is None else min(max(wait, 0.02), TICK_SECONDS))

    def take_in(self, paths: list[Path]) -> None:
        """Hash settled files and register them, many per transaction (one commit per batch
        instead of one per file: commits, not hashing, bound the intake rate)."""
        digests = []
        if len(self.hashed) > HASHED_KEPT:
            self.hashed.clear()  # only an optimisation: the reader hashes those itself
        for path in paths:
            try:
                identity = file_identity(path)
                digest = documents.digest_file(path)
                digests.append((path, digest))
                self.hashed[path] = (identity, digest.sha256)
            except (FileNotFoundError, NotRegularFileError):
                self.inbox.release(path)  # gone, or swapped: the next rescan looks again
            except OSError as exc:
                if self._cannot_read.first(path):
                    log.warning("cannot read %s: %s; will retry", printable(path), exc.strerror)
                self._later[path] = time.monotonic() + 5.0
        health = self.daemon.health
        try:
            decisions = self._register(digests)
            health.ok()
        except Exception as exc:
            decisions = []
            if is_outage(exc):
                health.failed("registering files", exc)
                for path, _ in digests:  # taken again once the database is back
                    self._later[path] = time.monotonic() + health.seconds_to_next_try()
                digests = []
            for item in digests:  # one bad apple must not hold up the batch
                try:
                    decisions += self._register([item])
                except Exception as exc:
                    health.failed(f"registering {printable(item[0])}", exc)
                    self._later[item[0]] = time.monotonic() + 5.0
        self._act(decisions)

    def _register(self, digests: list[tuple[Path, documents.FileDigest]]) -> list[_Decision]:
        reprocess = self.daemon.settings.duplicates == "reprocess"
        decisions = []
        with self.daemon.store.session() as session:
            if self.daemon.store.dialect == "sqlite":
                # Take SQLite's single write lock before the first read, so every look below
                # sees what the writes it leads to will be based on.
                session.execute(text("UPDATE documents SET id = id WHERE 0"))
            self.daemon.outbox.record_places(session)
            new, known = self._split_new(session, digests)
            queued = self._register_new(session, new)
            if queued is None:  # another daemon took some of this content meanwhile
                known, queued = digests, []
            decisions += queued
            for path, digest in known:
                decisions.append(self._register_one(session, path, digest, reprocess))
        return decisions

    @staticmethod
    def _split_new(
        session: Session, digests: list[tuple[Path, documents.FileDigest]]
    ) -> tuple[list[tuple[Path, documents.FileDigest]], list[tuple[Path, documents.FileDigest]]]:
        """(new, known): files whose content has no canonical row and which have no row of
        their own, the first of each content only; and the rest. One look-up for the batch
        (both halves indexed); the rest take the file-by-file path."""
        duplicate = DocumentStatus.DUPLICATE.value
        shas = {digest.sha256 for _, digest in digests}
        rows = session.execute(
            select(Document.path, Document.sha256, Document.status).where(
                or_(
                    and_(Document.sha256.in_(shas), Document.status != duplicate),
                    Document.path.in_([str(path) for path, _ in digests]),
                )
            )
        ).all()
        seen = {sha256 for _, sha256, status in rows if status != duplicate}
        files = {(path, sha256) for path, sha256, _ in rows}
        new, known = [], []
        for path, digest in digests:
            is_known = digest.sha256 in seen or (str(path), digest.sha256) in files
            (known if is_known else new).append((path, digest))
            seen.add(digest.sha256)  # a second copy in this batch waits for the first
        return new, known

    def _register_new(
        self, session: Session, new: list[tuple[Path, documents.FileDigest]]
    ) -> list[_Decision] | None:
        """New content: pending rows for the whole batch in one INSERT (the ORM's per-file
        look-ups, savepoints and flushes were most of the intake's time). None when the
        unique index refuses it: another daemon registered some of this content since the
        look-up, so the batch goes file by file."""
        present, decisions = [], []
        for path, digest in new:
            if path.exists():
                present.append((path, digest))
            else:  # hashed while another daemon finished it: moved out since
                decisions.append(_Decision(path, "gone"))
        if not present:
            return decisions
        inbox, now = self.daemon.settings.inbox, utcnow()
        rows = [
            {
                "path": str(path),
                "original_name": relative_name(path, inbox),
                "sha256": digest.sha256,
                "size": digest.size,
                "attempts": 0,
                "status": DocumentStatus.PENDING.value,
                "received_at": now,
            }
            for path, digest in present
        ]
        statement = insert(Document).returning(Document.id, sort_by_parameter_order=True)
        try:
            with session.begin_nested():
                ids = session.scalars(statement, rows).all()
        except IntegrityError:
            return None
        pending = DocumentStatus.PENDING.value
        return decisions + [
            _Decision(path, "queued", doc_id, pending)
            for (path, _), doc_id in zip(present, ids, strict=True)
        ]

    def _register_one(
        self, session: Session, path: Path, digest: documents.FileDigest, reprocess: bool
    ) -> _Decision:
        key = str(path)
        # The canonical row of this content and earlier rows of this very file, locked: all
        # intakes of the same content, on every machine, take turns here, so one file never
        # gets two rows (SQLite: the transaction already holds the database's write lock).
        rows = session.scalars(
            select(Document)
            .where(  # two indexed look-ups (canonical by sha256, this file by path)
                or_(
                    and_(
                        Document.sha256 == digest.sha256,
                        Document.status != DocumentStatus.DUPLICATE.value,
                    ),
                    and_(Document.path == key, Document.sha256 == digest.sha256),
                )
            )
            .order_by(Document.id)
            .with_for_update()
        ).all()
        if not path.exists():
            # Hashed while another daemon finished it: it has been moved out since.
            return _Decision(path, "gone")
        mine = self._latest_row_of(session, rows, key, digest.sha256)
        if mine is not None:
            return _Decision(path, self._known_file(mine), mine.id, mine.status, mine.error)
        canonical = next((r for r in rows if r.status != DocumentStatus.DUPLICATE.value), None)
        if canonical is not None and canonical.status in _IN_FLIGHT:
            return _Decision(path, "wait")  # same content in flight: its fate decides this one's
        mine = documents.register(
            session,
            path,
            digest,
            reprocess=reprocess,
            original_name=relative_name(path, self.daemon.settings.inbox),
        )
        if mine.status != DocumentStatus.DUPLICATE.value:
            return _Decision(path, "queued", mine.id, mine.status)
        original = session.get(Document, mine.duplicate_of)
        if original is not None and original.status in _IN_FLIGHT:
            # Another daemon registered this content between our look and our insert: the
            # same file (skip) or a copy of it in flight (wait).
            session.delete(mine)
            session.flush()
            return _Decision(path, "skip" if original.path == key else "wait")
        repeats = f"#{original.id} {original.path}" if original is not None else "a gone document"
        return _Decision(path, "move", mine.id, mine.status, mine.error, repeats)

    def _latest_row_of(
        self, session: Session, rows: list[Document], key: str, sha256: str
    ) -> Document | None:
        """The newest row of this very file (path and content), or None.

        SQLite: the transaction holds the database's one write lock, so `rows` (ordered by
        id) already holds every such row. PostgreSQL (READ COMMITTED): a statement that waited
        for the row locks still reads from the snapshot it started with, so a row another
        daemon inserted for this file while we waited is missing from `rows`; a new statement,
        taken under the locks, sees it."""
        if self.daemon.store.dialect == "sqlite":
            return next((r for r in reversed(rows) if r.path == key and r.sha256 == sha256), None)
        return session.scalars(
            select(Document)
            .where(Document.path == key, Document.sha256 == sha256)
            .order_by(Document.id.desc())
            .limit(1)
        ).first()

    def _act(self, decisions: list[_Decision]) -> None:
        daemon = self.daemon
        moves = []
        for d in decisions:
            if d.outcome != "queued":
                self.hashed.pop(d.path, None)
            if d.outcome == "queued":
                daemon.counters.count("registered")
                log.info("queued %s (document %d)", printable(d.path.name), d.doc_id)
            elif d.outcome == "gone":
                self.inbox.release(d.path)
            elif d.outcome == "wait":
                self._later[d.path] = time.monotonic() + DUPLICATE_RECHECK_SECONDS
            elif d.outcome == "move":
                if d.status == DocumentStatus.DUPLICATE.value:
                    daemon.counters.count("duplicates")
                    log.info(
                        "duplicate %s (document %d) of %s: not read again",
                        printable(d.path.name), d.doc_id, d.repeats,
                    )  # fmt: skip
                moves.append(Move(d.doc_id, d.path, d.status, d.error))
        if any(d.outcome == "queued" for d in decisions):
            daemon.wake.set()
        daemon.outbox.move_out(moves)

    def already_hashed(self, path: Path, sha256: str) -> bool:
        """Did intake hash this very file (unchanged since: same inode, size, mtime, ctime)
        to `sha256`? Then the reader need not read it once more just to hash it."""
        entry = self.hashed.pop(path, None)
        if entry is None or entry[1] != sha256:
            return False
        try:
            return file_identity(path) == entry[0]
        except OSError:
            return False

    @staticmethod
    def _known_file(document: Document) -> str:
        """A file whose row already exists: in the queue, or its outcome committed but the
        file not yet moved (the process that committed it died, or is moving it right now)."""
        return "skip" if document.status in _IN_FLIGHT else "move"


def file_identity(path: Path) -> tuple[int, int, int, int]:
    """What changes whenever the file is written, replaced or renamed (ctime cannot be set
    back by a writer, unlike mtime)."""
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
