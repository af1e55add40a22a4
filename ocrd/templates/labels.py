"""Where each field's printed label is: the line of print nearest left of the field on its
row, else just above it, else right of it on its row.

ocrd's models read digits, not letters, so the label cannot be read as a word: its box is
written into the template (`label = [x, y, w, h]`) for the user, who names the field from
it (`ocrd template check` draws it). Print is told from handwriting by size, as vision does:
letters of 8-14 pt are under PRINTED_MAX_HEIGHT_IN tall; glyphs close on one baseline make
one line of print.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocrd.types import Box, Page
from ocrd.vision.cleanup import clean_page, components
from ocrd.vision.fields import PRINTED_MAX_HEIGHT_IN
from ocrd.vision.structure import find_structure

MIN_GLYPH_IN = 0.04  # smaller: dust, dots of i
WORD_GAP_IN = 0.12  # glyphs closer than this side by side are one line of print
LEFT_REACH_IN = 3.5  # a label this far left (or right) of its field, at most
ABOVE_REACH_IN = 0.45  # ... or this far above it


def print_lines(page: Page) -> list[Box]:
    """Boxes (page pixels) of the lines of printed text on the page."""
    clean = clean_page(page.image, page.dpi)
    structure = find_structure(clean.ink, clean.binary, clean.px_per_inch)
    ppi = clean.px_per_inch
    count, _labels, stats = components(structure.binary)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    glyph = (heights >= MIN_GLYPH_IN * ppi) & (heights <= PRINTED_MAX_HEIGHT_IN * ppi)
    mask = np.zeros_like(structure.binary)
    for x, y, w, h, _area in stats[1:][glyph]:
        mask[y : y + h, x : x + w] = 255
    gap = max(1, int(WORD_GAP_IN * ppi))
    joined = cv2.dilate(mask, np.ones((1, gap), np.uint8))
    _n, _l, lines = components(joined)
    boxes = []
    for x, y, w, h, _area in lines[1:]:
        x, w = x + gap // 2, max(1, w - 2 * (gap // 2))  # the dilation's reach taken back
        boxes.append(page_box(clean.to_page, (int(x), int(y), int(w), int(h))))
    return boxes


def nearest_labels(fields: list[Box], lines: list[Box], dpi: float) -> list[Box | None]:
    """For each field, the print line nearest left of it on its row, else the nearest just
    above it, else the nearest right of it on its row (None: no print near it). A line
    inside a field is that field's content, not a label."""
    free = [line for line in lines if not any(_inside(line, f) for f in fields)]
    return [_label_of(box, free, dpi) for box in fields]


def _label_of(field: Box, lines: list[Box], dpi: float) -> Box | None:
    middle = field.y + field.h / 2
    left = [
        line for line in lines
        if line.x + line.w <= field.x + 0.05 * dpi
        and field.x - (line.x + line.w) <= LEFT_REACH_IN * dpi
        and line.y - 0.1 * dpi <= middle <= line.y + line.h + 0.3 * dpi
    ]  # fmt: skip
    if left:
        return max(left, key=lambda line: line.x + line.w)
    above = [
        line for line in lines
        if line.y + line.h <= field.y + 0.05 * dpi
        and field.y - (line.y + line.h) <= ABOVE_REACH_IN * dpi
        and line.x < field.x + field.w and line.x + line.w > field.x - 0.2 * dpi
    ]  # fmt: skip
    if above:
        return max(above, key=lambda line: line.y + line.h)
    right = [
        line for line in lines
        if line.x >= field.x + field.w - 0.05 * dpi
        and line.x - (field.x + field.w) <= LEFT_REACH_IN * dpi
        and line.y - 0.1 * dpi <= middle <= line.y + line.h + 0.3 * dpi
    ]  # fmt: skip
    return min(right, key=lambda line: line.x) if right else None


def _inside(line: Box, field: Box) -> bool:
    cx, cy = line.x + line.w / 2, line.y + line.h / 2
    return field.x <= cx <= field.x + field.w and field.y <= cy <= field.y + field.h


def page_box(to_page: np.ndarray, box: tuple[int, int, int, int]) -> Box:
    """A working-pixel box -> the bounding box of its corners in page pixels."""
    x, y, w, h = box
    corners = np.float64([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]])
    pts = corners @ to_page.T
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return Box(int(max(0, x0)), int(max(0, y0)), int(x1 - max(0, x0)), int(y1 - max(0, y0)))
