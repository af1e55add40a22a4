"""A template from one page: vision's frames and fields become named template fields.

Combs, boxes and underlines come from the page's ruled structure, so a blank form gives
them all; free-written and printed numbers come from the fields vision finds, so they need a
filled form. Names are field_1, field_2, ... in reading order (rows top to bottom, left to
right in a row), each with the box of its printed label (`labels.py`): ocrd's models read
digits, not words, so the user names the fields from the labels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ocrd.templates.align import make_fingerprint
from ocrd.templates.labels import nearest_labels, page_box, print_lines
from ocrd.templates.model import Template, TemplateField
from ocrd.templates.rules import Rules
from ocrd.types import Box, Page
from ocrd.vision import find_fields
from ocrd.vision.cleanup import clean_page
from ocrd.vision.structure import find_structure

WRITING_ABOVE_LINE_IN = 0.42  # an underline's writing sits in this band above it
FREE_PAD_IN = 0.1
FREE_MIN_WIDTH_IN = 1.6  # free numbers vary in length: the box reaches at least this wide


def create_template(name: str, page: Page, source: Path | None = None) -> Template:
    """The template of this page (raises ValueError when it has no fields or structure)."""
    height, width = page.image.shape[:2]
    dpi = page.dpi or int(round(max(height, width) / 11.69))
    boxes = _frame_fields(page) + _written_fields(page, dpi)
    boxes = _without_nested(boxes)
    if not boxes:
        raise ValueError("no fields found on the page (no combs, boxes, underlines or numbers)")
    boxes.sort(key=lambda item: (item[0].y // max(1, dpi // 6), item[0].x))
    clipped = [_clip(item[0], width, height) for item in boxes]
    labels = nearest_labels(clipped, print_lines(page), dpi)
    fields = []
    for index, (box, (_, layout, kind, cells), label) in enumerate(
        zip(clipped, boxes, labels, strict=True), start=1
    ):
        rules = Rules(max_length=cells) if cells else Rules()
        label = _clip(label, width, height) if label is not None else None
        fields.append(TemplateField(f"field_{index}", box, layout, kind, cells, rules, label))
    digest = hashlib.sha256(page.image.tobytes()).hexdigest()[:16]
    label = f"{source.name} page {page.number} ({digest})" if source else digest
    fingerprint = make_fingerprint(page.image, [f.box for f in fields])
    return Template(name, width, height, dpi, tuple(fields), fingerprint, label)


def _frame_fields(page: Page) -> list[tuple[Box, str, str, int | None]]:
    clean = clean_page(page.image, page.dpi)
    structure = find_structure(clean.ink, clean.binary, clean.px_per_inch)
    ppi = clean.px_per_inch
    found = []
    for frame in structure.frames:
        x, y, w, h = frame.x, frame.y, frame.w, frame.h
        if frame.layout == "underline":  # the writing is above the line
            band = int(WRITING_ABOVE_LINE_IN * ppi)
            x, y, w, h = x, y - band, w, h + band + int(0.05 * ppi)
        cells = len(frame.cells) if frame.layout == "comb" and frame.cells else None
        found.append((page_box(clean.to_page, (x, y, w, h)), frame.layout, "handwritten", cells))
    return found


def _written_fields(page: Page, dpi: int) -> list[tuple[Box, str, str, int | None]]:
    """Free and printed numbers (ink in ruled frames is covered by the frames)."""
    pad = int(FREE_PAD_IN * dpi)
    found = []
    for f in find_fields(page):
        if f.layout not in ("free", "printed"):
            continue
        b = f.box
        width = b.w + 2 * pad
        if f.layout == "free":
            width = max(width, int(FREE_MIN_WIDTH_IN * dpi))
        box = Box(b.x - pad, b.y - pad, width, b.h + 2 * pad)
        found.append((box, f.layout, f.kind, None))
    return found


def _without_nested(boxes: list) -> list:
    """A written number inside a frame is that frame's field, not another one."""
    frames = [item[0] for item in boxes if item[1] in ("comb", "box", "underline")]
    kept = []
    for item in boxes:
        box = item[0]
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        inside = any(
            f.x <= cx <= f.x + f.w and f.y <= cy <= f.y + f.h for f in frames if f is not box
        )
        if item[1] in ("comb", "box", "underline") or not inside:
            kept.append(item)
    return kept


def _clip(box: Box, width: int, height: int) -> Box:
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(width, box.x + box.w), min(height, box.y + box.h)
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))
