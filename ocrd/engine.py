"""The pipeline engine: vision in the caller's thread, recognition through shared batchers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocrd.batching import Batcher
from ocrd.config import Settings
from ocrd.types import DocumentReading


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
            path, max_pixels=self.settings.max_pixels, pdf_dpi=self.settings.pdf_dpi
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
