"""Plain data passed between pipeline stages.

Every stage speaks in these types so that no stage needs another's internals:
vision produces `Page` and `Field`, recognition turns fields into `FieldReading`,
the store persists `FieldReading`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["handwritten", "printed", "unknown"]


class BadInputError(Exception):
    """A file that cannot be read as a scanned page (empty, truncated, corrupt, not an
    image, too large, encrypted PDF...). The message is the one-line reason stored
    for the user; raising it never stops the process."""


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels of the page *as stored in the file* (before deskew)."""

    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass
class Page:
    """One decoded page. `image` is uint8 grayscale (H, W), orientation already fixed
    (EXIF), at `dpi` (300 for rasterised PDF pages; 0 when the file does not say)."""

    number: int  # 1-based
    image: np.ndarray
    dpi: int = 0
    notes: list[str] = field(default_factory=list)  # warnings vision raised on this page
    reduced: float = 1.0  # file pixels per image pixel: > 1 when a huge page was reduced on load


@dataclass
class Field:
    """A digit field found on a page, ready for the models.

    `line_crop` is the output of `ocrd.normalize.normalize_line` (float32, LINE_HEIGHT x W);
    `digit_crops` are outputs of `ocrd.normalize.normalize_digit` (float32, 28 x 28), one per
    separable component / comb cell, left to right, with `digit_boxes` in page coordinates.
    `layout` says how the field was found: comb / underline / box / free / printed / single.
    """

    page: int
    box: Box
    kind: Kind
    layout: str
    line_crop: np.ndarray | None
    digit_crops: list[np.ndarray] = field(default_factory=list)
    digit_boxes: list[Box] = field(default_factory=list)


@dataclass
class DigitReading:
    digit: str
    confidence: float
    box: Box
    runner_up: str | None = None
    runner_up_confidence: float = 0.0

    def as_dict(self) -> dict:
        return {
            "digit": self.digit,
            "confidence": round(float(self.confidence), 5),
            "box": self.box.as_list(),
            "runner_up": self.runner_up,
            "runner_up_confidence": round(float(self.runner_up_confidence), 5),
        }


@dataclass
class FieldReading:
    """What the store records for one field: one row of `results`."""

    page: int
    box: Box
    text: str
    confidence: float  # 0..1
    kind: Kind
    model: str  # "name@version" of the model(s) that produced the text
    digits: list[DigitReading] = field(default_factory=list)
    needs_review: bool = False  # a person should check it (low confidence, a broken rule)
    review_reason: str | None = None
    template: str | None = None  # the template the page matched, if any
    field_name: str | None = None  # the template's name for this field


@dataclass
class DocumentReading:
    """Everything read from one file. `notes` are one-line warnings that did not stop it
    ("no fields found", a DPI tag the content disagrees with)."""

    media_type: str
    pages: int
    fields: list[FieldReading] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
