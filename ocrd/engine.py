"""The pipeline engine: vision in the caller's thread, recognition through shared batchers."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from ocrd.batching import Batcher
from ocrd.config import Settings
from ocrd.types import DocumentReading
from ocrd.vision.loading import Admit

# Fields of one document waiting for the models at once: a 500-page PDF must not keep every
# page's crops in memory until its last page is decoded.
PENDING_FIELDS = 512


class BatchedReader:
    """vision (in the caller's thread) + recognition through shared batchers, for one file."""

    def __init__(self, recognizer: Any, settings: Settings, admit: Admit | None = None) -> None:
        import numpy as np

        self.recognizer = recognizer
        self.settings = settings
        self.admit = admit  # memory budget per page (ocrd.budget.MemoryBudget.hold)
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
        from ocrd.pipeline import extract_fields, with_empty_note
        from ocrd.vision import sniff_media_type

        media_type = sniff_media_type(path)
        pending: deque = deque()
        pages = 0
        readings = []
        settings = self.settings
        for page, fields in extract_fields(
            path,
            max_pixels=settings.max_pixels,
            pdf_dpi=settings.pdf_dpi,
            max_pages=settings.max_pages,
            admit=self.admit,
        ):
            pages = max(pages, page.number)
            for fld in fields:
                wants_line = self.has_lines and fld.line_crop is not None
                line = self.lines.submit(fld.line_crop) if wants_line else None
                pending.append((fld, line, self.digits.submit_many(fld.digit_crops)))
            while len(pending) > PENDING_FIELDS:
                self._collect(pending.popleft(), readings)
        while pending:
            self._collect(pending.popleft(), readings)
        document = DocumentReading(media_type=media_type, pages=pages, fields=readings)
        return with_empty_note(document)

    def _collect(self, item: tuple, readings: list) -> None:
        from ocrd.pipeline import fuse

        fld, line_future, digit_futures = item
        line = line_future.result() if line_future is not None else None
        digits = [f.result() for f in digit_futures]
        reading = fuse(fld, line, digits, self.recognizer.model_name)
        if reading is not None:
            readings.append(reading)

    def close(self) -> None:
        self.digits.close(timeout=10)
        self.lines.close(timeout=10)
