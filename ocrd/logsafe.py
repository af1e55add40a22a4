"""Log lines a hostile inbox cannot forge or flood.

A file name may hold a newline, an escape sequence or ``\\n<2>`` (which journald, reading the
daemon's stdout, takes for a new entry of priority "critical"), or bytes that are not UTF-8.
`printable` escapes all of those; `EscapingFilter` applies it to every message the daemon
logs (the text only: a traceback keeps its own line breaks). `Once` remembers what was already
said, so a file that stays unreadable, or a cause that keeps failing, is logged once, not on
every rescan.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"  # line/paragraph separators, other surrogates


def _needs_escape(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029) or 0xD800 <= code < 0xE000


_NEEDS_ESCAPE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(value: object) -> str:
    """`str(value)` with control characters, line separators and undecodable bytes escaped."""
    text = str(value)
    if _NEEDS_ESCAPE.search(text) is None:  # the usual case, without a loop per character
        return text
    return "".join(_escape_char(c) if _needs_escape(c) else c for c in text)


class EscapingFilter(logging.Filter):
    """Escapes the formatted message of every record (installed on the daemon's handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as usual
            return True
        escaped = printable(message)
        if escaped != message or record.args:
            record.msg, record.args = escaped, None
        return True


class Once:
    """Remembers keys already reported (the most recent `limit` of them)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        """True the first time `key` is seen (until `forget(key)`)."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > self.limit:
                self._seen.popitem(last=False)
            return True

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._seen
