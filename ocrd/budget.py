"""A byte budget for pages in memory: decoding threads take turns instead of adding up.

Three 14000 x 14000 scans decoded at once each need their full-size buffer; with a budget the
second waits until the first is reduced and read. A page costs what `ocrd.vision.loading`
estimates from the file's header, before anything is decoded. A page that alone exceeds the
budget still runs, but only when nothing else holds any of it, so work never stops.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

MIB = 1 << 20


class MemoryBudget:
    """`with budget.hold(nbytes):` blocks until `nbytes` fit beside what others hold."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = max(1, int(limit_bytes))
        self._used = 0
        self._waiting = 0
        self._peak = 0
        self._cond = threading.Condition()

    @classmethod
    def from_megabytes(cls, megabytes: int) -> MemoryBudget:
        return cls(megabytes * MIB)

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        amount = max(0, min(int(nbytes), self.limit))
        with self._cond:
            self._waiting += 1
            try:
                while self._used and self._used + amount > self.limit:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._used += amount
            self._peak = max(self._peak, self._used)
        try:
            yield
        finally:
            with self._cond:
                self._used -= amount
                self._cond.notify_all()

    @property
    def used(self) -> int:
        with self._cond:
            return self._used

    @property
    def waiting(self) -> int:
        """Threads waiting for room now."""
        with self._cond:
            return self._waiting

    @property
    def peak(self) -> int:
        with self._cond:
            return self._peak
