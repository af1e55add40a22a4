"""Setting up logging for the daemon: journald priorities under systemd, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
import sys

from ocrd.logsafe import EscapingFilter


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
    # File names reach the log: a newline or "\n<2>" in one must not forge a (critical) line.
    handler.addFilter(EscapingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("watchdog", "sqlalchemy", "alembic", "tensorflow", "absl", "h5py", "PIL"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
