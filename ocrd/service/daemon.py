"""One `ocrd watch` process: start-up, the main loop (claim, renew, report), stop, reload."""

from __future__ import annotations

import contextlib
import functools
import http.server
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ocrd.budget import MemoryBudget
from ocrd.config import Settings
from ocrd.engine import Engine
from ocrd.files import NotRegularFileError
from ocrd.intake import sweep_stale_temp_files
from ocrd.service.intake_loop import TICK_SECONDS, Intake
from ocrd.service.log_setup import setup_logging
from ocrd.service.metrics import Counters, start_metrics_server, status_line
from ocrd.service.notify import install_signal_handlers, systemd_notifier
from ocrd.service.outage import DatabaseHealth
from ocrd.service.outbox import Outbox, Outcome
from ocrd.service.startup import (
    StartupError,
    check_folders,
    configure_compute,
    create_folders,
    open_checked_store,
    reconcile_moves,
)
from ocrd.store import Store, documents
from ocrd.store.claims import (
    DEFAULT_MAX_ATTEMPTS,
    Claim,
    claim_documents,
    heartbeat,
    queue_counts,
    release_claims,
    release_dead_claims,
)
from ocrd.types import BadInputError

log = logging.getLogger("ocrd.service")

STOP_GRACE_SECONDS = 20.0  # in-flight work gets this long after SIGTERM (systemd allows 30 s)
HEARTBEAT_SECONDS = 10.0
STATUS_SECONDS = 2.0
RELOADABLE = (
    "log_level",
    "settle_seconds",
    "rescan_seconds",
    "ignore",
    "duplicates",
    "on_done",
    "max_batch",
    "max_delay_ms",
    "templates_dir",
)


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
        self.notifier = systemd_notifier()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = threading.Event()
        self.counters = Counters()
        self.health = DatabaseHealth()  # one warning per outage, back-off, one line when back
        self.budget = MemoryBudget.from_megabytes(settings.memory_budget_mb)
        self.store: Store
        self.reader: Engine
        self.intake: Intake
        self.outbox: Outbox
        self.pool: ThreadPoolExecutor
        # Threads mostly wait on the vision processes and the batchers (max_delay): more of
        # them make fuller batches (a burst of one-digit files: 8 threads 66 files/s, 32
        # threads 92 files/s on 2 cores). Pages in memory are bounded by `budget`, not them.
        self.vision_threads = max(4, settings.workers * 16)
        self.capacity = 2 * self.vision_threads  # claimed at once: reading + committing
        self._in_flight: dict[int, Future] = {}
        self._in_flight_lock = threading.Lock()
        self._metrics: http.server.ThreadingHTTPServer | None = None
        self.last_counts: dict[str, int] = {}

    @property
    def busy(self) -> bool:
        return bool(self._in_flight)

    @property
    def in_flight_count(self) -> int:
        return len(self._in_flight)

    # - lifecycle -

    def run(self) -> int:
        install_signal_handlers(self)
        self.start()
        try:
            with self.store.kept_open():  # no WAL checkpoint at each commit (Store doc)
                self._main_loop()
        finally:
            self.shutdown()
        return 0

    def start(self) -> None:
        """Checks, store, models (loaded and warmed), threads; then READY=1."""
        settings = self.settings
        check_folders(settings, create=False)  # everything checked before anything is made
        self.store = open_checked_store(settings)
        create_folders(settings)
        swept = sweep_stale_temp_files([settings.processed, settings.failed, settings.inbox])
        if swept:
            log.warning("removed %d temp file(s) left by an interrupted move", swept)
        fixed = reconcile_moves(self.store, settings)
        if fixed:
            log.warning("recorded the new place of %d file(s) moved just before a crash", fixed)
        freed = release_dead_claims(self.store, settings.worker_id)
        if freed:
            log.warning("took back %d document(s) left processing by a dead worker", len(freed))
        log.info("compute: %s", configure_compute(settings.workers))
        from ocrd.recognition import load_recognizer

        recognizer = load_recognizer()
        self.reader = Engine(recognizer, settings, budget=self.budget)
        self.reader.warm_up()
        self._load_templates(startup=True)
        self.outbox = Outbox(
            self.store,
            settings,
            self.counters,
            release=lambda path: self.intake.inbox.release(path),
            finished=self._finished,
            health=self.health,
            stopping=self.stopping,
            settle_again=lambda path: self.intake.inbox.settle_again(path),
        )
        self.outbox.start()
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
        if settings.review_port:  # the review page (ocrd/review) in a thread of the daemon
            from ocrd.review.server import serve_beside_daemon

            try:
                self._review = serve_beside_daemon(self.store, settings)
            except OSError as exc:
                raise StartupError(f"review port 127.0.0.1:{settings.review_port}: {exc}") from None
            log.info("review page on %s", self._review.url)
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
        if hasattr(self, "outbox"):
            with contextlib.suppress(Exception):
                self.outbox.flush_places()
        if self._metrics is not None:
            self._metrics.shutdown()
        if getattr(self, "_review", None) is not None:
            self._review.stop()
        if hasattr(self, "outbox"):
            self.outbox.close(timeout=5)
        if hasattr(self, "reader"):
            self.reader.close(wait=not left)  # a worker may be deep in a 200-page TIFF
        log.info(
            "stopped: %d done, %d failed, %d duplicates this run",
            self.counters.done,
            self.counters.failed,
            self.counters.duplicates,
        )
        logging.shutdown()
        if left:
            os._exit(0)  # worker threads still inside a model or decoder call: do not wait

    # - main loop -

    def _main_loop(self) -> None:
        last_heartbeat = last_status = time.monotonic()
        while not self.stopping.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            self._dispatch()
            self._guarded("recording where files went", self.outbox.flush_places)
            now = time.monotonic()
            if now - last_heartbeat >= HEARTBEAT_SECONDS:
                with self._in_flight_lock:
                    ids = list(self._in_flight)
                renew = functools.partial(heartbeat, self.store, self.settings.worker_id, ids)
                self._guarded("renewing claims", renew)
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
        batchers_alive = self.reader.digits.alive and self.reader.lines.alive
        return self.intake.thread.is_alive() and batchers_alive and self.outbox.alive

    def _guarded(self, where: str, call: Callable[[], object]) -> bool:
        """Run a database call unless the database is backing off; report failures through
        `health` (one warning per outage). True when it ran and succeeded."""
        if not self.health.available():
            return False
        try:
            call()
        except Exception as exc:
            self.health.failed(where, exc)
            return False
        self.health.ok()
        return True

    def _dispatch(self) -> None:
        free = self.capacity - len(self._in_flight)
        if free <= 0 or (free < self.capacity // 4 and self._in_flight):
            return  # claim in chunks: a transaction per finished group was most of the claiming
        claims = []

        def claim() -> None:
            claims.extend(claim_documents(self.store, self.settings.worker_id, free))

        self._guarded("claiming documents", claim)
        for claim in claims:
            with self._in_flight_lock:
                self._in_flight[claim.id] = self.pool.submit(self._process_safely, claim)

    def _load_templates(self, *, startup: bool = False) -> None:
        """Form templates from templates_dir (at start and on SIGHUP). A broken file stops
        the start; on reload it is logged and the templates in use are kept."""
        from ocrd.templates import TemplateError, load_templates

        try:
            templates = load_templates(self.settings.templates_dir)
        except TemplateError as exc:
            if startup:
                raise StartupError(str(exc)) from None
            log.error("templates not reloaded, keeping the %d in use: %s",
                      len(self.reader.templates or ()), exc)  # fmt: skip
            return
        self.reader.templates = templates
        names = ", ".join(t.name for t in templates.templates) or "none"
        log.info("templates from %s: %s", self.settings.templates_dir, names)

    def _reload(self) -> None:
        if self.reload_settings is None:
            self._load_templates()
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
        self._load_templates()

    # - one document -

    def _process_safely(self, claim: Claim) -> None:
        """Worker thread: read the document, hand the outcome to the committer."""
        try:
            outcome = self._process(claim)
        except Exception as exc:  # a bug, not the file: still one document, not the daemon
            log.exception("document %d (%s) crashed its reader", claim.id, claim.path)
            outcome = Outcome(claim, Path(claim.path), None, f"internal error: {exc!r}", 0.0)
        self.outbox.submit(outcome)

    def _process(self, claim: Claim) -> Outcome:
        path = Path(claim.path)
        started = time.monotonic()

        def failure(reason: str) -> Outcome:
            return Outcome(claim, path, None, reason, time.monotonic() - started)

        if claim.attempts > self.max_attempts:
            return failure(f"gave up after {claim.attempts - 1} attempts that never finished")
        try:
            taken = _signature(path)
            # Hashed by this daemon's intake and untouched since: no second read to hash it.
            intake = getattr(self, "intake", None)  # None: driven without one (tests)
            same = intake is not None and intake.already_hashed(path, claim.sha256)
            sha256 = claim.sha256 if same else documents.digest_file(path).sha256
        except FileNotFoundError:
            return failure("file disappeared from the inbox before it was read")
        except NotRegularFileError as exc:
            return failure(exc.strerror or "not a regular file")
        if sha256 != claim.sha256:
            # Written to again after it was taken (a writer that paused): let it settle.
            return Outcome(claim, path, None, None, time.monotonic() - started, requeue=True)
        try:
            reading = self.reader.read(path)
        except BadInputError as exc:
            if self._still_being_written(path, taken):
                return Outcome(claim, path, None, None, time.monotonic() - started, requeue=True)
            return failure(str(exc) or "unreadable file")
        except Exception as exc:
            log.exception("reading %s failed", path)
            return failure(f"internal error: {type(exc).__name__}: {exc}")
        return Outcome(claim, path, reading, None, time.monotonic() - started)

    def _still_being_written(self, path: Path, taken: tuple[int, int]) -> bool:
        """Before failing a file as truncated or corrupt: did it change since it was taken, or,
        written just now, does it change within one more settle time?"""
        try:
            if _signature(path) != taken:
                return True
            if time.time() - taken[1] / 1e9 > RECENT_WRITE_SECONDS:
                return False
            self.stopping.wait(max(self.settings.settle_seconds, 0.5))
            return _signature(path) != taken
        except OSError:
            return False

    def _finished(self, outcomes: list[Outcome]) -> None:
        """Committer thread, after a group: those documents are no longer in flight."""
        with self._in_flight_lock:
            for o in outcomes:
                self._in_flight.pop(o.claim.id, None)
        self.wake.set()

    # - health -

    def _report_status(self) -> None:
        if self.health.available() and not self.health.down:
            with contextlib.suppress(Exception):
                self.last_counts = queue_counts(self.store)
        self.notifier.notify("STATUS=" + status_line(self))


RECENT_WRITE_SECONDS = 10.0  # a file modified this recently may still be growing


def _signature(path: Path) -> tuple[int, int]:
    stat_result = path.stat()
    return stat_result.st_size, stat_result.st_mtime_ns


def _masked(url: str) -> str:
    from ocrd.store import mask_url

    return mask_url(url)


def run(settings: Settings, reload_settings: Callable[[], Settings] | None = None) -> int:
    """Entry point of `ocrd watch`: exit status 0 after a clean stop, 2 on a start-up error."""
    setup_logging(settings.log_level)
    daemon = Daemon(settings, reload_settings=reload_settings)
    try:
        return daemon.run()
    except StartupError as exc:  # once, on stderr (journald records it too)
        print(f"ocrd watch: error: {exc}", file=sys.stderr)
        return 2
