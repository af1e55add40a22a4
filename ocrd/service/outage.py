"""Bad days with the database: one warning when it goes away, back-off, one line when it is back.

Every thread of the daemon talks to the store (intake, claiming, heartbeats, commits); without
this each of them logged a traceback per attempt, four times a second: a 21 s PostgreSQL
outage wrote 138,559 lines. `DatabaseHealth` is shared by them all: the first failure that
looks like an outage (connection refused, server gone, SQLite locked for good) logs one
warning and starts a back-off (doubling from FIRST_DELAY to MAX_DELAY) during which callers
skip their database work; the first success after it logs one line saying how long it lasted.
Other errors get a traceback once per cause (where + type + message) and one line after that,
at most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ocrd.logsafe import Once

log = logging.getLogger("ocrd.service")

FIRST_DELAY = 0.5
MAX_DELAY = 5.0
REPEAT_SECONDS = 60.0


def is_outage(exc: BaseException) -> bool:
    """The database could not be reached or used at all (not: this statement was wrong)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from ocrd.store import DatabaseUnavailableError

    if isinstance(exc, OperationalError | InterfaceError | DatabaseUnavailableError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


class DatabaseHealth:
    """Shared by every thread that uses the store; see the module doc."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_try = 0.0
        self._delay = FIRST_DELAY
        self._tracebacks = Once()
        self._last_repeat: dict[tuple[str, str], float] = {}
        self.outages = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def available(self) -> bool:
        """False while backing off: skip database work until the next try is due."""
        with self._lock:
            return self._down_since is None or self._clock() >= self._next_try

    def seconds_to_next_try(self) -> float:
        with self._lock:
            return max(0.0, self._next_try - self._clock()) if self._down_since else 0.0

    def ok(self) -> None:
        """A database call succeeded."""
        with self._lock:
            if self._down_since is None:
                return
            lasted = self._clock() - self._down_since
            self._down_since, self._delay, self._next_try = None, FIRST_DELAY, 0.0
        log.warning("database is back after %.1f s; resuming", lasted)

    def failed(self, where: str, exc: BaseException) -> None:
        """A database call failed: an outage (back off) or another error (report it)."""
        if not is_outage(exc):
            self.error(where, exc)
            return
        with self._lock:
            now = self._clock()
            first = self._down_since is None
            if first:
                self._down_since = now
                self.outages += 1
            self._next_try = now + self._delay
            self._delay = min(self._delay * 2, MAX_DELAY)
        if first:
            log.warning(
                "database unavailable (%s: %s); pausing database work, retrying with back-off "
                "up to every %.0f s",
                where, first_line(exc), MAX_DELAY,
            )  # fmt: skip
            self._traceback_once(where, exc, logging.DEBUG)

    def error(self, where: str, exc: BaseException) -> None:
        """An unexpected error: a traceback the first time for this cause, then one line at
        most once a minute."""
        if self._traceback_once(where, exc, logging.ERROR):
            return
        key = (where, type(exc).__name__)
        now = self._clock()
        with self._lock:
            if now - self._last_repeat.get(key, -REPEAT_SECONDS) < REPEAT_SECONDS:
                return
            self._last_repeat[key] = now
        log.error("%s failed again: %s: %s", where, type(exc).__name__, first_line(exc))

    def _traceback_once(self, where: str, exc: BaseException, level: int) -> bool:
        cause = (where, type(exc).__name__, first_line(exc))
        if not self._tracebacks.first(cause):
            return False
        log.log(level, "%s failed: %s", where, first_line(exc), exc_info=exc)
        return True
