"""Is anything written in a template field? Ink left inside it once its own rules are erased.

Vision erases a comb's dividers and a box's sides before reading, but on a blurred, bilevel,
warped or low-dpi scan pieces survive, and a divider (or the two dividers of an empty cell)
reads as "1": an empty comb of 8 cells came out "111". The template knows where the field's
rules are, so each field is warped out of the page into template pixels (rotation, scale and
perspective undone), its rules are erased in a band around their known place, and what ink
is left and tall enough to be writing is the field's evidence. A reading's digit that covers
none of it is taken out (`apply.py`); a field with none is an empty result.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ocrd.templates.align import PageMatch
from ocrd.templates.model import TemplateField
from ocrd.templates.remnants import rule_columns
from ocrd.types import Box, FieldReading

EVIDENCE_DPI = 100  # the aligned field is looked at this coarsely: a digit is 20+ pixels tall
RULE_BAND_IN = 0.035  # ink this close to one of the field's rules is the rule (+ misalignment)
MIN_WRITING_IN = 0.08  # a component at least this tall is writing, not a speck or a rule's end
INK_SHARE = 0.4  # ink: this far from the paper towards the darkest pixel (a rule's darkness)
MIN_CONTRAST = 40  # grey levels: a crop with less range holds no ink (blank paper, no rules)


def with_writing(image: np.ndarray, match: PageMatch, dpi: float) -> PageMatch:
    """`match` with every written-in field's writing found on `image` (the pixels
    `match.homography` maps); printed fields are not looked at (None)."""
    writing = tuple(
        None if "printed" in (f.layout, f.kind) else writing_boxes(image, match.homography, f, dpi)
        for f in match.template.fields
    )
    return dataclasses.replace(match, writing=writing)


def without_unwritten(
    reading: FieldReading, writing: tuple[Box, ...] | None, match: PageMatch
) -> FieldReading | None:
    """`reading` without the digits that cover no writing of its field (None: nothing is
    left); as it was when the field was not looked at. A reading whose digits do not spell
    its text is kept or dropped whole."""
    if writing is None:
        return reading
    digits = reading.digits
    if not digits or "".join(d.digit for d in digits) != reading.text:
        return reading if covers_writing(_on_template(reading.box, match), writing) else None
    kept = [d for d in digits if covers_writing(_on_template(d.box, match), writing)]
    if len(kept) == len(digits):
        return reading
    if not kept:
        return None
    return dataclasses.replace(reading, text="".join(d.digit for d in kept), digits=kept)


def _on_template(box: Box, match: PageMatch) -> Box:
    """The bounding box of `box`'s corners mapped onto the template."""
    x, y, w, h = box.x, box.y, box.w, box.h
    pts = match.to_template(np.float64([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]))
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return Box(int(x0), int(y0), max(1, int(round(x1 - x0))), max(1, int(round(y1 - y0))))


def writing_boxes(image: np.ndarray, to_template: np.ndarray, tfield: TemplateField,
                  dpi: float) -> tuple[Box, ...]:  # fmt: skip
    """Boxes (template pixels) of the writing in `tfield` on `image`; `to_template` maps
    image pixels to template pixels, `dpi` is the template's."""
    scale = min(1.0, EVIDENCE_DPI / dpi)
    b = tfield.box
    to_crop = np.array([[scale, 0, -b.x * scale], [0, scale, -b.y * scale], [0, 0, 1]])
    size = (max(1, int(round(b.w * scale))), max(1, int(round(b.h * scale))))
    crop = cv2.warpPerspective(  # (sampled, not averaged: a speck stays a speck, too small)
        image, to_crop @ to_template, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    ink = _ink(crop)
    band = max(1, int(round(RULE_BAND_IN * dpi * scale)))
    for x in _rule_columns(tfield, scale):
        ink[:, max(0, x - band) : x + band + 1] = 0
    for y in _rule_rows(tfield, dpi, scale):
        ink[max(0, y - band) : y + band + 1, :] = 0
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), 8)
    tall = MIN_WRITING_IN * dpi * scale
    return tuple(
        Box(
            int(b.x + x / scale),
            int(b.y + y / scale),
            int(np.ceil(w / scale)),
            int(np.ceil(h / scale)),
        )  # fmt: skip
        for x, y, w, h, _area in stats[1:count]
        if h >= tall
    )


def _ink(crop: np.ndarray) -> np.ndarray:
    """Dark pixels relative to this crop's own paper and its darkest ink."""
    paper, darkest = np.percentile(crop, [75, 0.5])
    if paper - darkest < MIN_CONTRAST:
        return np.zeros(crop.shape, bool)
    return crop < paper - INK_SHARE * (paper - darkest)


def _rule_columns(tfield: TemplateField, scale: float) -> list[int]:
    """x of the field's upright rules in crop pixels: a box's sides, a comb's dividers."""
    return [int(round((x - tfield.box.x) * scale)) for x in rule_columns(tfield)]


def _rule_rows(tfield: TemplateField, dpi: float, scale: float) -> list[int]:
    """y of the field's level rules in crop pixels: top and bottom sides, an underline."""
    h = tfield.box.h * scale
    if tfield.layout in ("comb", "box"):
        return [0, int(round(h))]
    if tfield.layout == "underline":  # the line runs along the bottom of the writing band
        return [int(round(h - 0.05 * dpi * scale))]
    return []


def covers_writing(box: Box, writing: tuple[Box, ...]) -> bool:
    """Whether `box` (template pixels) covers a good part of some piece of writing (or is
    mostly covered by one)."""
    for w in writing:
        dx = min(box.x + box.w, w.x + w.w) - max(box.x, w.x)
        dy = min(box.y + box.h, w.y + w.h) - max(box.y, w.y)
        if dx > 0 and dy > 0 and dx * dy >= 0.3 * min(box.w * box.h, w.w * w.h):
            return True
    return False
