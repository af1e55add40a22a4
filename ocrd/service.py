"""The daemon behind `ocrd watch`: inbox -> vision (worker pool) -> batched inference -> store.

Threads, all feeding bounded queues so that a flood of files keeps memory flat:

- intake: watches the inbox (`ocrd.intake.Inbox`), hashes each settled file and registers it in
  the store (pending, or a duplicate), many files per transaction; finishes the move of files
  whose outcome was committed by a process that died before moving them.
- main loop (main thread): claims pending documents (`ocrd.store.claims`) while there is room,
  renews claims, talks to systemd (READY/STATUS/WATCHDOG/STOPPING), handles SIGTERM (graceful
  stop) and SIGHUP (reload settings).
- worker pool: decodes pages and finds fields (`ocrd.pipeline.extract_fields`), submits the crops
  to the two batchers and fuses the answers (`ocrd.pipeline.fuse`).
- two batchers (`ocrd.batching.Batcher`): one model call per batch of digit crops / line crops
  gathered across pages and files.
- committer (a third `Batcher`): commits results + status of a group of documents in one
  transaction (group commit), and only then moves their files to processed/ or failed/.

Exactly once: a file's row goes pending -> processing -> done | failed | duplicate; results are
committed before the file moves, so after a crash the restart either redoes the work (`finish`
replaces results, never duplicates them) or just completes the move.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sdnotify
from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.orm import Session

from ocrd.batching import Batcher
from ocrd.config import Settings
from ocrd.intake import (
    Inbox,
    candidate_names,
    move_to_failed,
    move_to_processed,
    processed_folder,
)
from ocrd.store import Document, DocumentStatus, Store, documents, open_store
from ocrd.store.claims import (
    DEFAULT_MAX_ATTEMPTS,
    Claim,
    claim_documents,
    heartbeat,
    queue_counts,
    release_claims,
    release_dead_claims,
)
from ocrd.types import BadInputError, DocumentReading

log = logging.getLogger("ocrd.service")

STOP_GRACE_SECONDS = 20.0  # in-flight work gets this long after SIGTERM (systemd allows 30 s)
HEARTBEAT_SECONDS = 10.0
STATUS_SECONDS = 2.0
TICK_SECONDS = 0.25
DUPLICATE_RECHECK_SECONDS = 2.0
INTAKE_BATCH = 64  # files registered per transaction
INTAKE_PAUSE_SECONDS = 0.05
COMMIT_BATCH = 64  # documents finished per transaction
RECONCILE_LIMIT = 4 * (INTAKE_BATCH + COMMIT_BATCH)
RELOADABLE = (
    "log_level",
    "settle_seconds",
    "rescan_seconds",
    "ignore",
    "duplicates",
    "on_done",
    "max_batch",
    "max_delay_ms",
)
_IN_FLIGHT = (DocumentStatus.PENDING.value, DocumentStatus.PROCESSING.value)


@dataclass
class Outcome:
    """A read document on its way to the store: a reading, or the reason it failed."""

    claim: Claim
    path: Path
    reading: DocumentReading | None
    reason: str | None
    seconds: float


@dataclass
class Move:
    """A file whose outcome is committed and which must leave the inbox."""

    doc_id: int | None
    path: Path
    status: str | None
    error: str | None


@dataclass
class _Decision:
    path: Path
    outcome: str  # queued | wait | skip | move | gone
    doc_id: int | None = None
    status: str | None = None
    error: str | None = None


class StartupError(Exception):
    """The daemon cannot start; the message says what to fix."""


# --- start-up checks ----------------------------------------------------------------------------


def _nested(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_folders(settings: Settings) -> None:
    """Inbox must exist; processed/ and failed/ are created if missing; all must be writable
    and none may lie inside another (the daemon would read its own output)."""
    inbox = settings.inbox
    if not inbox.is_dir():
        raise StartupError(f"inbox {inbox} does not exist or is not a folder (mkdir -p {inbox})")
    folders = {"inbox": inbox, "processed": settings.processed, "failed": settings.failed}
    for name, folder in folders.items():
        if name != "inbox" and not folder.exists():
            try:
                folder.mkdir(parents=True)
                log.info("created %s folder %s", name, folder)
            except OSError as exc:
                raise StartupError(
                    f"cannot create {name} folder {folder}: {exc.strerror}"
                ) from None
        if not folder.is_dir():
            raise StartupError(f"{name} {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StartupError(f"{name} folder {folder} is not writable by this user")
    resolved = {name: folder.resolve() for name, folder in folders.items()}
    names = list(resolved)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = resolved[first], resolved[second]
            if _nested(a, b) or _nested(b, a):
                raise StartupError(
                    f"{first} ({a}) and {second} ({b}) must be separate folders, "
                    "neither inside the other"
                )


def open_checked_store(settings: Settings) -> Store:
    """Reachable and migrated (to head, under a lock), or a StartupError saying why not."""
    from ocrd.store import StoreError

    try:
        return open_store(settings.database_url, upgrade=True)
    except StoreError as exc:
        raise StartupError(str(exc)) from None


def reconcile_moves(store: Store, settings: Settings) -> int:
    """After a crash: rows whose outcome is committed and whose file left the inbox, but whose
    new place was not recorded yet. Finds the file in processed/ or failed/ (same name or a
    numbered variant, same content) and records it. Files still in the inbox are left to the
    intake, which completes their move."""
    prefix = str(settings.inbox) + os.sep
    final = [DocumentStatus.FAILED.value]
    if settings.on_done == "move":  # deleted files keep their inbox path for good
        final += [DocumentStatus.DONE.value, DocumentStatus.DUPLICATE.value]
    columns = (Document.id, Document.path, Document.status, Document.sha256, Document.size)
    with store.session() as session:
        rows = session.execute(
            select(*columns, Document.finished_at)
            .where(Document.status.in_(final), Document.path.startswith(prefix, autoescape=True))
            .order_by(Document.finished_at.desc())
            .limit(RECONCILE_LIMIT)  # a crash strands at most one commit group and intake batch
        ).all()
    fixes = []
    for doc_id, path_text, status, sha256, size, finished_at in rows:
        path = Path(path_text)
        if path.exists():
            continue
        if status == DocumentStatus.FAILED.value:
            folders = [settings.failed]
        else:
            day = (finished_at or datetime.now(UTC)).astimezone()
            folders = [
                processed_folder(settings.processed, day + timedelta(days=d)) for d in (0, 1)
            ]
        found = _find_moved(path.name, sha256, size, folders)
        if found is not None:
            fixes.append((doc_id, path_text, str(found)))
    if fixes:
        with store.session() as session:
            for doc_id, old, new in fixes:
                session.execute(
                    update(Document)
                    .where(Document.id == doc_id, Document.path == old)
                    .values(path=new)
                    .execution_options(synchronize_session=False)
                )
    return len(fixes)


def _find_moved(name: str, sha256: str, size: int, folders: list[Path]) -> Path | None:
    for folder in folders:
        for candidate in candidate_names(name):  # taken names have no gaps: stop at the first
            path = folder / candidate
            try:
                if path.stat().st_size == size and documents.digest_file(path).sha256 == sha256:
                    return path
            except FileNotFoundError:
                break
    return None


# --- compute set-up -----------------------------------------------------------------------------


def configure_compute(workers: int) -> str:
    """GPU when present (memory grown on demand); on CPU, TF uses every core for one batch while
    OpenCV stays single-threaded per call because the worker pool already runs files in
    parallel. Returns a description for the log."""
    import cv2

    from ocrd.recognition import import_tensorflow

    cv2.setNumThreads(1)
    tf = import_tensorflow()  # quiet import; also lets GPU memory grow on demand
    gpus = tf.config.list_physical_devices("GPU")
    try:
        if not gpus:
            tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 1)
            tf.config.threading.set_inter_op_parallelism_threads(2)
    except RuntimeError:
        log.debug("TensorFlow already initialised; keeping its thread settings")
    if gpus:
        return f"GPU ({', '.join(g.name for g in gpus)})"
    return f"CPU ({os.cpu_count()} cores, {workers} vision workers)"


# --- reading one document with batched inference -------------------------------------------------


class BatchedReader:
    """vision (in the caller's thread) + recognition through shared batchers, for one file."""

    def __init__(self, recognizer: Any, settings: Settings) -> None:
        import numpy as np

        self.recognizer = recognizer
        self.settings = settings
        # Shipped weights may hold only the digit model; fields are then read digit by digit.
        self.has_lines = bool(getattr(recognizer, "has_line_model", True))
        delay = settings.max_delay_ms / 1000
        self.digits: Batcher = Batcher(
            lambda crops: recognizer.read_digits(np.stack(crops)),
            max_batch=settings.max_batch,
            max_delay=delay,
            name="digit-batcher",
        )
        self.lines: Batcher = Batcher(
            recognizer.read_lines,
            max_batch=max(1, settings.max_batch // 4),  # lines are wider, fewer per call
            max_delay=delay,
            name="line-batcher",
        )

    def warm_up(self) -> None:
        """First model calls build the graphs; do them before READY=1."""
        import numpy as np

        self.recognizer.read_digits(np.zeros((1, 28, 28), np.float32))
        if self.has_lines:
            self.recognizer.read_lines([np.zeros((32, 96), np.float32)])

    def set_limits(self, max_batch: int, max_delay_ms: int) -> None:
        self.digits.max_batch, self.digits.max_delay = max_batch, max_delay_ms / 1000
        self.lines.max_batch, self.lines.max_delay = max(1, max_batch // 4), max_delay_ms / 1000

    def read(self, path: Path) -> DocumentReading:
        from ocrd.pipeline import extract_fields, fuse
        from ocrd.vision import sniff_media_type

        media_type = sniff_media_type(path)
        pending = []
        pages = 0
        for page, fields in extract_fields(
            path,
            max_pixels=self.settings.max_pixels,
            pdf_dpi=self.settings.pdf_dpi,
            input_kind=self.settings.input_kind,
        ):
            pages = max(pages, page.number)
            for fld in fields:
                wants_line = self.has_lines and fld.line_crop is not None
                line = self.lines.submit(fld.line_crop) if wants_line else None
                pending.append((fld, line, self.digits.submit_many(fld.digit_crops)))
        readings = []
        model_name = self.recognizer.model_name
        for fld, line_future, digit_futures in pending:
            line = line_future.result() if line_future is not None else None
            reading = fuse(fld, line, [f.result() for f in digit_futures], model_name)
            if reading is not None:
                readings.append(reading)
        return DocumentReading(media_type=media_type, pages=pages, fields=readings)

    def close(self) -> None:
        self.digits.close(timeout=10)
        self.lines.close(timeout=10)


# --- counters shared by the threads ---------------------------------------------------------------


@dataclass
class Counters:
    started_at: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    duplicates: int = 0
    pages: int = 0
    registered: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=2000))  # finish times
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, outcome: str, pages: int = 0) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.pages += pages
            if outcome in ("done", "failed"):
                self.recent.append(time.monotonic())

    def rate(self, window: float = 60.0) -> float:
        """Documents finished per second over the last `window` seconds."""
        now = time.monotonic()
        with self.lock:
            recent = sum(1 for t in self.recent if now - t <= window)
        return recent / min(window, max(now - self.started_at, 1e-9))


# --- intake thread ------------------------------------------------------------------------------


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
        )
        self.thread = threading.Thread(target=self._run, name="intake", daemon=True)
        self._later: dict[Path, float] = {}

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
        for path in paths:
            try:
                digests.append((path, documents.digest_file(path)))
            except FileNotFoundError:
                self.inbox.release(path)
            except OSError as exc:
                log.warning("cannot read %s yet (%s); will retry", path, exc.strerror)
                self._later[path] = time.monotonic() + 5.0
        try:
            decisions = self._register(digests)
        except Exception:
            decisions = []
            for item in digests:  # one bad apple must not hold up the batch
                try:
                    decisions += self._register([item])
                except Exception:
                    log.exception("intake of %s failed; will retry", item[0])
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
            self.daemon.record_places(session)
            for path, digest in digests:
                decisions.append(self._register_one(session, path, digest, reprocess))
        return decisions

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
        # PostgreSQL (READ COMMITTED): a statement that waited for those locks still reads
        # from the snapshot it started with, so a row another daemon inserted for this file
        # while we waited is missing from `rows`. A new statement, taken under the locks,
        # sees it.
        mine = session.scalars(
            select(Document)
            .where(Document.path == key, Document.sha256 == digest.sha256)
            .order_by(Document.id.desc())
            .limit(1)
        ).first()
        if mine is not None:
            return _Decision(path, self._known_file(mine), mine.id, mine.status, mine.error)
        canonical = next((r for r in rows if r.status != DocumentStatus.DUPLICATE.value), None)
        if canonical is not None and canonical.status in _IN_FLIGHT:
            return _Decision(path, "wait")  # same content in flight: its fate decides this one's
        mine = documents.register(session, path, digest, reprocess=reprocess)
        if mine.status != DocumentStatus.DUPLICATE.value:
            return _Decision(path, "queued", mine.id, mine.status)
        original = session.get(Document, mine.duplicate_of)
        if original is not None and original.status in _IN_FLIGHT:
            # Another daemon registered this content between our look and our insert: the
            # same file (skip) or a copy of it in flight (wait).
            session.delete(mine)
            session.flush()
            return _Decision(path, "skip" if original.path == key else "wait")
        return _Decision(path, "move", mine.id, mine.status, mine.error)

    def _act(self, decisions: list[_Decision]) -> None:
        daemon = self.daemon
        moves = []
        for d in decisions:
            if d.outcome == "queued":
                daemon.counters.count("registered")
                log.info("queued %s (document %d)", d.path.name, d.doc_id)
            elif d.outcome == "gone":
                self.inbox.release(d.path)
            elif d.outcome == "wait":
                self._later[d.path] = time.monotonic() + DUPLICATE_RECHECK_SECONDS
            elif d.outcome == "move":
                if d.status == DocumentStatus.DUPLICATE.value:
                    daemon.counters.count("duplicates")
                    log.info("duplicate %s (document %d): not read again", d.path.name, d.doc_id)
                moves.append(Move(d.doc_id, d.path, d.status, d.error))
        if any(d.outcome == "queued" for d in decisions):
            daemon.wake.set()
        daemon.move_out(moves)

    @staticmethod
    def _known_file(document: Document) -> str:
        """A file whose row already exists: in the queue, or its outcome committed but the
        file not yet moved (the process that committed it died, or is moving it right now)."""
        return "skip" if document.status in _IN_FLIGHT else "move"


# --- metrics endpoint ---------------------------------------------------------------------------


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    daemon_ref: Daemon | None = None

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body = self.daemon_ref.metrics_text().encode() if self.daemon_ref else b""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("metrics: " + format, *args)


def start_metrics_server(daemon: Daemon, port: int) -> http.server.ThreadingHTTPServer:
    handler = type("MetricsHandler", (_MetricsHandler,), {"daemon_ref": daemon})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


# --- logging ---------------------------------------------------------------------------------


class _JournalFormatter(logging.Formatter):
    """Under systemd (JOURNAL_STREAM set) prefix each line with its syslog priority, which
    journald turns into the entry's level; elsewhere print a timestamp."""

    PRIORITY = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
        logging.CRITICAL: 2,
    }

    def __init__(self) -> None:
        self.journal = bool(os.environ.get("JOURNAL_STREAM"))
        fmt = (
            "%(name)s: %(message)s"
            if self.journal
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.journal:
            return f"<{self.PRIORITY.get(record.levelno, 6)}>{text}"
        return text


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JournalFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("watchdog", "sqlalchemy", "alembic", "tensorflow", "absl", "h5py", "PIL"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


# --- the daemon ---------------------------------------------------------------------------------


class Daemon:
    """One `ocrd watch` process. `run()` blocks until SIGTERM/SIGINT (or `request_stop()`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        reload_settings: Callable[[], Settings] | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.settings = settings
        self.reload_settings = reload_settings
        self.max_attempts = max_attempts
        self.notifier = sdnotify.SystemdNotifier()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = threading.Event()
        self.counters = Counters()
        self.store: Store
        self.reader: BatchedReader
        self.intake: Intake
        self.pool: ThreadPoolExecutor
        # Threads mostly wait on the batchers (max_delay): more of them make fuller batches.
        self.vision_threads = max(4, settings.workers * 4)
        self.capacity = max(16, settings.workers * 8)  # claimed at once: reading + committing
        self._placed: list[tuple[int, Path, Path]] = []  # moved files whose rows still say inbox
        self._placed_lock = threading.Lock()
        self._in_flight: dict[int, Future] = {}
        self._in_flight_lock = threading.Lock()
        self._metrics: http.server.ThreadingHTTPServer | None = None
        self._last_counts: dict[str, int] = {}

    @property
    def busy(self) -> bool:
        return bool(self._in_flight)

    # - lifecycle -

    def run(self) -> int:
        self._install_signal_handlers()
        self.start()
        try:
            self._main_loop()
        finally:
            self.shutdown()
        return 0

    def start(self) -> None:
        """Checks, store, models (loaded and warmed), threads; then READY=1."""
        settings = self.settings
        check_folders(settings)
        self.store = open_checked_store(settings)
        fixed = reconcile_moves(self.store, settings)
        if fixed:
            log.warning("recorded the new place of %d file(s) moved just before a crash", fixed)
        freed = release_dead_claims(self.store, settings.worker_id)
        if freed:
            log.warning("took back %d document(s) left processing by a dead worker", len(freed))
        log.info("compute: %s", configure_compute(settings.workers))
        from ocrd.recognition import load_recognizer

        recognizer = load_recognizer()
        self.reader = BatchedReader(recognizer, settings)
        self.reader.warm_up()
        # Group commit: outcomes that queue up while one transaction runs share the next.
        self.committer: Batcher[Outcome, None] = Batcher(
            self._commit_all, max_batch=COMMIT_BATCH, max_delay=0.002, name="committer"
        )
        self.pool = ThreadPoolExecutor(self.vision_threads, thread_name_prefix="vision")
        self.intake = Intake(self)
        if settings.metrics_port:
            try:
                self._metrics = start_metrics_server(self, settings.metrics_port)
            except OSError as exc:
                raise StartupError(
                    f"metrics port 127.0.0.1:{settings.metrics_port}: {exc.strerror}"
                ) from None
            log.info("metrics on http://127.0.0.1:%d/metrics", settings.metrics_port)
        self.intake.start()
        log.info(
            "watching %s (processed -> %s, failed -> %s, database %s) as %s with model %s",
            settings.inbox,
            settings.processed,
            settings.failed,
            _masked(settings.database_url),
            settings.worker_id,
            recognizer.model_name,
        )
        self.notifier.notify("READY=1\nSTATUS=watching " + str(settings.inbox))

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def shutdown(self) -> None:
        """Stop intake and claiming, let in-flight documents commit, give back the rest."""
        self.stopping.set()
        self.notifier.notify("STOPPING=1\nSTATUS=finishing in-flight documents")
        log.info("stopping: finishing %d in-flight document(s)", len(self._in_flight))
        if hasattr(self, "intake"):
            self.intake.stop()
        if hasattr(self, "pool"):
            # Claimed but not started: hand back at once rather than read them now.
            self.pool.shutdown(wait=False, cancel_futures=True)
            with self._in_flight_lock:
                queued = [i for i, f in self._in_flight.items() if f.cancelled()]
                for doc_id in queued:
                    del self._in_flight[doc_id]
            release_claims(self.store, self.settings.worker_id, queued)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._in_flight_lock:
            left = list(self._in_flight)
        if left:
            # Not committed, so nothing is lost: the next start (or another daemon) redoes them.
            released = release_claims(self.store, self.settings.worker_id, left)
            log.warning("gave back %d unfinished document(s) for the next run", released)
        with contextlib.suppress(Exception):
            self.flush_places()
        if self._metrics is not None:
            self._metrics.shutdown()
        if hasattr(self, "committer"):
            self.committer.close(timeout=5)
        if hasattr(self, "reader"):
            self.reader.close()
        log.info(
            "stopped: %d done, %d failed, %d duplicates this run",
            self.counters.done,
            self.counters.failed,
            self.counters.duplicates,
        )
        logging.shutdown()
        if left:
            os._exit(0)  # worker threads still inside a model or decoder call: do not wait

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: (self.reload_requested.set(), self.wake.set()))

    # - main loop -

    def _main_loop(self) -> None:
        last_heartbeat = last_status = time.monotonic()
        while not self.stopping.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            self._dispatch()
            try:
                self.flush_places()
            except Exception:
                log.exception("recording where files went failed; retrying")
            now = time.monotonic()
            if now - last_heartbeat >= HEARTBEAT_SECONDS:
                with self._in_flight_lock:
                    ids = list(self._in_flight)
                heartbeat(self.store, self.settings.worker_id, ids)
                last_heartbeat = now
            if now - last_status >= STATUS_SECONDS:
                self._report_status()
                last_status = now
            if self._healthy():
                self.notifier.notify("WATCHDOG=1")
            self.wake.wait(TICK_SECONDS)
            self.wake.clear()

    def _healthy(self) -> bool:
        """Only a daemon whose threads all live keeps feeding systemd's watchdog."""
        batchers = (self.reader.digits, self.reader.lines, self.committer)
        return self.intake.thread.is_alive() and all(b.alive for b in batchers)

    def _dispatch(self) -> None:
        free = self.capacity - len(self._in_flight)
        if free <= 0:
            return
        try:
            claims = claim_documents(self.store, self.settings.worker_id, free)
        except Exception:
            log.exception("claiming documents failed; retrying")
            return
        for claim in claims:
            with self._in_flight_lock:
                self._in_flight[claim.id] = self.pool.submit(self._process_safely, claim)

    def _reload(self) -> None:
        if self.reload_settings is None:
            return
        try:
            new = self.reload_settings()
        except Exception as exc:
            log.error("reload failed, keeping the current settings: %s", exc)
            return
        changed = [
            name
            for name in vars(new)
            if name not in ("sources", "worker_id")
            and getattr(new, name) != getattr(self.settings, name)
        ]
        for name in changed:
            if name in RELOADABLE:
                setattr(self.settings, name, getattr(new, name))
            else:
                log.warning("reload: %s changed, takes effect after a restart", name)
        logging.getLogger().setLevel(self.settings.log_level)
        inbox = self.intake.inbox
        inbox.ignore = tuple(self.settings.ignore)
        inbox.rescan_seconds = self.settings.rescan_seconds
        inbox.settler.settle_seconds = self.settings.settle_seconds
        self.reader.set_limits(self.settings.max_batch, self.settings.max_delay_ms)
        log.info("reloaded settings (changed: %s)", ", ".join(changed) or "nothing")

    # - one document -

    def _process_safely(self, claim: Claim) -> None:
        """Worker thread: read the document, hand the outcome to the committer."""
        try:
            outcome = self._process(claim)
        except Exception as exc:  # a bug, not the file: still one document, not the daemon
            log.exception("document %d (%s) crashed its reader", claim.id, claim.path)
            outcome = Outcome(claim, Path(claim.path), None, f"internal error: {exc!r}", 0.0)
        self.committer.submit(outcome)

    def _process(self, claim: Claim) -> Outcome:
        path = Path(claim.path)
        started = time.monotonic()

        def failure(reason: str) -> Outcome:
            return Outcome(claim, path, None, reason, time.monotonic() - started)

        if claim.attempts > self.max_attempts:
            return failure(f"gave up after {claim.attempts - 1} attempts that never finished")
        try:
            digest = documents.digest_file(path)
        except FileNotFoundError:
            return failure("file disappeared from the inbox before it was read")
        if digest.sha256 != claim.sha256:
            return failure("file was replaced before it was read")
        try:
            reading = self.reader.read(path)
        except BadInputError as exc:
            return failure(str(exc) or "unreadable file")
        except Exception as exc:
            log.exception("reading %s failed", path)
            return failure(f"internal error: {type(exc).__name__}: {exc}")
        return Outcome(claim, path, reading, None, time.monotonic() - started)

    def _commit_all(self, outcomes: list[Outcome]) -> list[None]:
        self.commit(outcomes)
        return [None] * len(outcomes)

    def commit(self, outcomes: list[Outcome]) -> None:
        """Committer thread: results + status for a group of documents in one transaction
        (group commit), then the file moves. A group that fails is retried one by one."""
        try:
            self._commit_group(outcomes)
            committed = outcomes
        except Exception:
            committed = []
            for outcome in outcomes:
                try:
                    self._commit_group([outcome])
                    committed.append(outcome)
                except Exception:
                    # Store unreachable or similar: the claim lapses and the work is redone.
                    log.exception("document %d: outcome not committed", outcome.claim.id)
        moves = []
        for o in committed:
            if o.reading is not None:
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
            with self._in_flight_lock:
                for o in outcomes:
                    self._in_flight.pop(o.claim.id, None)
            self.wake.set()

    def _commit_group(self, outcomes: list[Outcome]) -> None:
        with self.store.session() as session:
            self.record_places(session)
            for o in outcomes:
                if o.reading is not None:
                    documents.finish(session, o.claim.id, o.reading)
                else:
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
                    target = move_to_processed(m.path, settings.processed)
            except FileNotFoundError:
                log.debug("%s already moved by another worker", m.path)
                continue
            except OSError as exc:
                # Left in the inbox with its outcome committed: the next rescan moves it.
                log.error("cannot move %s: %s", m.path, exc)
                continue
            finally:
                self.intake.inbox.release(m.path)
            if target is not None and m.doc_id is not None:
                placed.append((m.doc_id, m.path, target))
        with self._placed_lock:
            self._placed += placed

    def record_places(self, session: Session) -> None:
        """Write where moved files went, in whatever transaction comes next (a crash before
        that only leaves a row pointing at the inbox path of a file that has left it)."""
        with self._placed_lock:
            placed, self._placed = self._placed, []
        try:
            for doc_id, old, new in placed:
                session.execute(
                    update(Document)
                    .where(Document.id == doc_id, Document.path == str(old))
                    .values(path=str(new))
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            with self._placed_lock:
                self._placed = placed + self._placed
            raise

    def flush_places(self) -> None:
        if self._placed:
            with self.store.session() as session:
                self.record_places(session)

    # - health -

    def status_line(self) -> str:
        c = self.counters
        pending = self._last_counts.get("pending", 0)
        return (
            f"{pending} pending, {len(self._in_flight)} in flight, "
            f"{self.intake.inbox.watching} settling; this run: {c.done} done, {c.failed} failed, "
            f"{c.duplicates} duplicates; {c.rate():.1f} files/s"
        )

    def _report_status(self) -> None:
        with contextlib.suppress(Exception):
            self._last_counts = queue_counts(self.store)
        self.notifier.notify("STATUS=" + self.status_line())

    def metrics_text(self) -> str:
        c = self.counters
        lines = [
            "# HELP ocrd_documents_total Documents finished by this process, by outcome.",
            "# TYPE ocrd_documents_total counter",
            f'ocrd_documents_total{{outcome="done"}} {c.done}',
            f'ocrd_documents_total{{outcome="failed"}} {c.failed}',
            f'ocrd_documents_total{{outcome="duplicate"}} {c.duplicates}',
            "# HELP ocrd_pages_total Pages read by this process.",
            "# TYPE ocrd_pages_total counter",
            f"ocrd_pages_total {c.pages}",
            "# HELP ocrd_in_flight Documents being read by this process now.",
            "# TYPE ocrd_in_flight gauge",
            f"ocrd_in_flight {len(self._in_flight)}",
            "# HELP ocrd_settling Inbox files waiting to settle.",
            "# TYPE ocrd_settling gauge",
            f"ocrd_settling {self.intake.inbox.watching}",
            "# HELP ocrd_queue Documents in the store by status (all workers).",
            "# TYPE ocrd_queue gauge",
        ]
        lines += [f'ocrd_queue{{status="{s}"}} {n}' for s, n in sorted(self._last_counts.items())]
        for batcher in (self.reader.digits, self.reader.lines):
            kind = batcher.name.split("-")[0]
            s = batcher.stats
            lines += [
                f'ocrd_batches_total{{model="{kind}"}} {s.batches}',
                f'ocrd_batch_items_total{{model="{kind}"}} {s.items}',
                f'ocrd_inference_seconds_total{{model="{kind}"}} {s.busy_seconds:.3f}',
            ]
        return "\n".join(lines) + "\n"


def _masked(url: str) -> str:
    from ocrd.store import mask_url

    return mask_url(url)


def run(settings: Settings, reload_settings: Callable[[], Settings] | None = None) -> int:
    """Entry point of `ocrd watch`: exit status 0 after a clean stop, 2 on a start-up error."""
    setup_logging(settings.log_level)
    daemon = Daemon(settings, reload_settings=reload_settings)
    try:
        return daemon.run()
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"ocrd watch: error: {exc}", file=sys.stderr)
        return 2
