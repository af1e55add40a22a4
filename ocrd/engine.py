"""The pipeline engine that `ocrd process` and `ocrd watch` both run.

    file -> [vision processes] -> fields -> [digit batcher] [line batcher] -> fuse -> reading

- Decoding and field finding (`ocrd.pipeline.extract_fields`) run in a pool of worker
  processes, one per `workers` setting: that stage is mostly Python and would hold the GIL in
  threads (measured: 2 threads 1.3x one, 2 processes 3x). Workers come from a fork server that
  preloads the vision modules, so none carries the parent's threads or models.
- Recognition runs in this process through two cross-file `Batcher`s (digit crops, line
  crops), so the models see few, full batches whatever the callers do.
- `read(path)` is blocking and thread-safe (the daemon calls it from its claim workers);
  `read_all(paths)` keeps a bounded window of files in flight and yields the outcomes in the
  order given (`ocrd process`).

A worker that dies (a decoder crash, an OOM kill) takes only the pool down: it is replaced and
the file is tried once more; a file that kills two workers is reported as failed.

Memory (the `memory_budget_mb` setting): a worker decodes one page at a time, and a huge page
is reduced while it is decoded (`ocrd.vision.loading`), so a worker's pixel peak is its
document's largest page, never the document. Before a document goes to a worker, the engine
holds that peak - estimated from the file's header, nothing decoded - on one `MemoryBudget`
until the worker is done with it; so the pages being decoded across all workers together stay
within the budget (a document whose page alone exceeds it runs with nothing else held, so work
never stops). A byte count shared by processes would need shared memory and locks across them;
holding it here, where the work is handed out, is simpler and holds the same bound. Not
counted: each worker's fixed base (interpreter, OpenCV, ~100 MB) and the crops of a
document's fields on their way to the models.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from ocrd.batching import Batcher
from ocrd.budget import MemoryBudget
from ocrd.config import Settings
from ocrd.types import BadInputError, DocumentReading, Field

log = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 1.0
# Line crops wait this many times the digit batcher's delay for company. A line-model call
# costs mostly per frame (its GRU runs step by step), not per row: a page's ~11 lines spread
# over ~9 width buckets run as calls of 1-2 rows, and a batch gathered over two or three pages
# costs ~1.5x less CPU per line (measured with `python -m bench.speed`, issue 15).
LINE_DELAY_FACTOR = 5

Key = TypeVar("Key")


# --- the vision worker processes -------------------------------------------------------------


def _worker_init(owner: int) -> None:
    """Signals are for the engine's process (it stops us with the pool); exit once it is gone
    (killed with -9: the fork server would not notice, as every worker holds its pipe open)."""
    import cv2

    cv2.setNumThreads(1)  # one page per process already fills a core
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch_owner() -> None:
        while _alive(owner):
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)  # nobody will ever send us work again

    threading.Thread(target=watch_owner, name="owner-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def extract_document(
    path: Path,
    max_pixels: int,
    pdf_dpi: int,
    max_pages: int = 0,
    input_kind: str = "auto",
    templates: Any = None,
) -> tuple[str, int, list[Field], list[str], dict]:
    """Worker process: (media type, pages, fields of every page, boxes in the file's pixels,
    page notes, template matches) of one file, decoded page by page (only the fields are kept).
    Pages are matched against `templates` (an ocrd.templates.TemplateSet) here, where the page
    images are: page number -> (match or None, page shape)."""
    from ocrd.pipeline import extract_fields
    from ocrd.vision import sniff_media_type

    media_type = sniff_media_type(path)
    pages, found, notes, matches = 0, [], [], {}
    for page, fields in extract_fields(
        path, max_pixels=max_pixels, pdf_dpi=pdf_dpi, max_pages=max_pages, input_kind=input_kind
    ):
        pages = max(pages, page.number)
        if templates:  # matched and missed fields read where the page image is
            from ocrd.templates import match_page

            matches[page.number], fields = match_page(page, fields, templates)
        found += fields
        notes += page.notes
        del page  # not alive beside the next page while it is decoded
    return media_type, pages, found, notes, matches


def _ready() -> int:
    return os.getpid()


def start_vision_server() -> multiprocessing.context.BaseContext:
    """Start the fork server the vision workers come from, if it is not running: it imports
    the vision modules (~0.5 s) in its own process, so a command that calls this first
    overlaps that with its own start (opening the store, registering files)."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ocrd.pipeline"])
    forkserver.ensure_running()
    return context


def _vision_pool(workers: int) -> ProcessPoolExecutor:
    context = start_vision_server()
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),)
    )


# --- the engine ------------------------------------------------------------------------------


class Engine:
    """Vision worker processes + recognition through shared batchers (module doc)."""

    def __init__(
        self,
        recognizer: Any,
        settings: Settings,
        *,
        workers: int | None = None,
        budget: MemoryBudget | None = None,
    ) -> None:
        import numpy as np

        self.recognizer = recognizer
        self.settings = settings
        self.workers = max(1, workers or settings.workers)
        # Pages being decoded in all workers together (module doc); the daemon passes its own.
        self.budget = budget or MemoryBudget.from_megabytes(settings.memory_budget_mb)
        # Shipped weights may hold only the digit model; fields are then read digit by digit.
        self.has_lines = bool(getattr(recognizer, "has_line_model", True))
        self.templates: Any = None  # ocrd.templates.TemplateSet; pages are matched against it
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
            max_delay=delay * LINE_DELAY_FACTOR,
            name="line-batcher",
        )
        self._pool_lock = threading.Lock()
        self._pool = _vision_pool(self.workers)
        self._decoding = 0  # files handed to the vision workers and not yet back
        self._decoding_lock = threading.Lock()
        self._readers: ThreadPoolExecutor | None = None

    def warm_up(self) -> None:
        """Start the vision processes and build the model graphs before the first file."""
        import numpy as np

        started = [self._pool.submit(_ready) for _ in range(self.workers)]
        self.recognizer.read_digits(np.zeros((1, 28, 28), np.float32))
        if self.has_lines:
            self.recognizer.read_lines([np.zeros((32, 96), np.float32)])
        for future in started:
            future.result()

    def set_limits(self, max_batch: int, max_delay_ms: int) -> None:
        self.digits.max_batch, self.digits.max_delay = max_batch, max_delay_ms / 1000
        self.lines.max_batch = max(1, max_batch // 4)
        self.lines.max_delay = max_delay_ms * LINE_DELAY_FACTOR / 1000

    # - one document -

    def read(self, path: Path) -> DocumentReading:
        """Everything read from one file ('no fields found' noted when there is none).
        Raises BadInputError. Thread-safe, blocking."""
        from ocrd.line_votes import combined, line_inputs
        from ocrd.pipeline import digit_crops_to_read, fuse, with_empty_note

        media_type, pages, fields, notes, matches = self._extract(Path(path))
        pending = []
        for fld in fields:
            lines = line_inputs(fld) if self.has_lines else []
            line_futures = [self.lines.submit(line) for line in lines]
            crops = digit_crops_to_read(fld, self.has_lines)
            pending.append((fld, lines, line_futures, self.digits.submit_many(crops)))
        if not self._decoding:  # no other file will bring crops soon: run the batches now
            self.digits.flush()
            self.lines.flush()
        readings = []
        model_name = self.recognizer.model_name
        for fld, lines, line_futures, digit_futures in pending:
            line = combined([f.result() for f in line_futures], lines) if lines else None
            digits = [f.result() for f in digit_futures]
            reading = fuse(fld, line, digits, model_name, self.settings.accept_confidence)
            if reading is not None:
                readings.append(reading)
        if matches:
            from ocrd.templates import name_pages

            readings = name_pages(readings, matches)
        document = DocumentReading(media_type=media_type, pages=pages, fields=readings, notes=notes)
        return with_empty_note(document)

    def _extract(self, path: Path) -> tuple[str, int, list[Field], list[str], dict]:
        from ocrd.vision.loading import estimate_peak_bytes

        s = self.settings
        args = (path, s.max_pixels, s.pdf_dpi, s.max_pages, s.input_kind, self.templates)
        with self._decoding_lock:
            self._decoding += 1
        try:
            with self.budget.hold(estimate_peak_bytes(path, s.max_pixels, s.pdf_dpi)):
                return self._extract_with_retry(path, args)
        finally:
            with self._decoding_lock:
                self._decoding -= 1

    def _extract_with_retry(self, path: Path, args: tuple) -> tuple:
        for attempt in (1, 2):
            pool = self._pool
            try:
                return pool.submit(extract_document, *args).result()
            except BrokenProcessPool:
                self._replace_pool(pool)
                log.warning("a vision worker died reading %s (attempt %d)", path, attempt)
        raise BadInputError("the decoder crashed on this file (twice)")

    def _replace_pool(self, broken: ProcessPoolExecutor) -> None:
        with self._pool_lock:
            if self._pool is broken:  # the first thread to notice replaces it
                self._pool = _vision_pool(self.workers)
                broken.shutdown(wait=False, cancel_futures=True)

    # - many documents -

    def submit(self, path: Path) -> Future[DocumentReading]:
        """`read(path)` in one of the engine's reader threads."""
        if self._readers is None:
            # Readers mostly wait (on a worker, on a batch): more than workers keep all busy.
            self._readers = ThreadPoolExecutor(4 * self.workers, thread_name_prefix="reader")
        return self._readers.submit(self.read, path)

    @property
    def window(self) -> int:
        """Files in flight at once in `read_all`: enough to fill workers and batches."""
        return 4 * self.workers

    def read_all(
        self, items: Iterable[tuple[Key, Path | None]]
    ) -> Iterator[tuple[Key, Future[DocumentReading] | None]]:
        """`in_order` with this engine's reader threads and window."""
        return in_order(items, self.submit, self.window)

    def close(self, wait: bool = True) -> None:
        """Stop the batchers and the vision workers; `wait=False` when the process is about
        to `os._exit` with files still being read (their workers then exit on their own)."""
        if self._readers is not None:
            self._readers.shutdown(wait=False, cancel_futures=True)
        self.digits.close(timeout=10)
        self.lines.close(timeout=10)
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class InOrder:
    """Each (key, path) back with its finished future (result or exception), in the order
    given; a None path (nothing to read) comes back with None. At most `window` files are in
    flight, so memory stays flat on any number of files. `submit` is called lazily, only for
    paths to read (so models load only when a file needs them). `next_ready()` says whether
    the next outcome is already there (a caller may group its work until one is not)."""

    def __init__(
        self,
        items: Iterable[tuple[Key, Path | None]],
        submit: Callable[[Path], Future[DocumentReading]],
        window: int,
    ) -> None:
        self._items, self._submit, self._window = items, submit, window
        self._queue: deque[tuple[Key, Future[DocumentReading] | None]] = deque()

    def __iter__(self) -> Iterator[tuple[Key, Future[DocumentReading] | None]]:
        queue = self._queue
        for key, path in self._items:
            queue.append((key, None if path is None else self._submit(path)))
            while len(queue) > self._window or (queue and _done(queue[0][1])):
                yield _finished(queue.popleft())
        while queue:
            yield _finished(queue.popleft())

    def next_ready(self) -> bool:
        return bool(self._queue) and _done(self._queue[0][1])


def in_order(
    items: Iterable[tuple[Key, Path | None]],
    submit: Callable[[Path], Future[DocumentReading]],
    window: int,
) -> Iterator[tuple[Key, Future[DocumentReading] | None]]:
    """`InOrder` as a plain iterator."""
    return iter(InOrder(items, submit, window))


def _done(future: Future | None) -> bool:
    return future is None or future.done()


def _finished(item: tuple[Key, Future[DocumentReading] | None]) -> tuple[Key, Future | None]:
    if item[1] is not None:
        item[1].exception()  # waits; the caller takes result or exception
    return item
