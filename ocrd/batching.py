"""Cross-file batching: many small model inputs from many documents -> few large model calls.

A `Batcher` owns one background thread and a bounded queue. Callers `submit` items and get
futures back; the thread runs `predict(list_of_items)` once it holds `max_batch` items or the
oldest has waited `max_delay` seconds, then hands each result to its future. It knows nothing
about models: `predict` is any callable returning one result per item, so it is tested with a
plain function and used with `Recognizer.read_digits` / `read_lines`.

If a batch call raises, the items are retried one by one so that a single poisonous input fails
alone and the rest of the batch still gets its results.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()
_FLUSH = object()


@dataclass
class BatchStats:
    """Running totals, read by the service for STATUS= and metrics."""

    batches: int = 0
    items: int = 0
    failures: int = 0
    busy_seconds: float = 0.0
    sizes: list[int] = field(default_factory=list)  # last few batch sizes, for logs

    def record(self, size: int, seconds: float) -> None:
        self.batches += 1
        self.items += size
        self.busy_seconds += seconds
        self.sizes = [*self.sizes[-31:], size]


class Batcher(Generic[Item, Result]):
    """Gathers items from many threads and runs `predict` on batches of them.

    `max_batch`: most items per call. `max_delay`: seconds the oldest queued item may wait for
    company before a smaller batch is run. `max_queued`: bound on items waiting (submitters
    block beyond it, which is what keeps memory flat under a flood of files).
    """

    def __init__(
        self,
        predict: Callable[[list[Item]], Sequence[Result]],
        *,
        max_batch: int = 256,
        max_delay: float = 0.020,
        max_queued: int | None = None,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._predict = predict
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.name = name
        self.stats = BatchStats()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued or 4 * max_batch)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def alive(self) -> bool:
        """False once the thread has stopped (closed, or died on a bug)."""
        return self._thread.is_alive()

    def submit(self, item: Item) -> Future[Result]:
        """Queue one item (blocks while the queue is full); its future gets the result."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed")
        future: Future[Result] = Future()
        self._queue.put((time.monotonic(), item, future))
        return future

    def submit_many(self, items: Sequence[Item]) -> list[Future[Result]]:
        return [self.submit(item) for item in items]

    def flush(self) -> None:
        """Run what is queued without waiting out `max_delay`: for a caller that knows no
        more items are on their way (the engine, when no file is being decoded)."""
        with contextlib.suppress(queue.Full):  # a full queue runs a batch anyway
            self._queue.put_nowait(_FLUSH)

    def close(self, timeout: float | None = None) -> None:
        """Run what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def __enter__(self) -> Batcher[Item, Result]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            if first is _FLUSH:  # nothing was waiting
                continue
            batch = [first]
            deadline = first[0] + self.max_delay
            while len(batch) < self.max_batch:
                # Items that queued up while the last batch ran are already overdue: take
                # whatever is there without waiting.
                remaining = max(deadline - time.monotonic(), 0.0)
                try:
                    entry = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if entry is _STOP:
                    stopping = True
                    break
                if entry is _FLUSH:
                    break
                batch.append(entry)
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[float, Item, Future[Result]]]) -> None:
        live = [(item, fut) for _, item, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        items = [item for item, _ in live]
        started = time.monotonic()
        try:
            results = list(self._predict(items))
            if len(results) != len(items):
                raise RuntimeError(
                    f"predict returned {len(results)} results for {len(items)} items"
                )
        except Exception:
            log.warning("%s: batch of %d failed; retrying items one by one", self.name, len(items))
            self._run_singly(live)
        else:
            for (_, fut), result in zip(live, results, strict=True):
                fut.set_result(result)
        self.stats.record(len(items), time.monotonic() - started)

    def _run_singly(self, live: list[tuple[Item, Future[Result]]]) -> None:
        for item, fut in live:
            try:
                (result,) = self._predict([item])
            except Exception as exc:  # one bad input: only its document fails
                self.stats.failures += 1
                fut.set_exception(exc)
            else:
                fut.set_result(result)
