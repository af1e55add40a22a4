"""What an image holds, decided from its content: a page (a form), one field, or one digit.

A scanned form carries many small lines of ink spread over the sheet; a field image (a
cheque-amount crop, a field exported by another capture system) is one written number that
fills most of the picture's height; a digit image is one glyph. The DPI tag plays no part:
exports and crops rarely carry a truthful one.

The decision works on a copy at most ANALYSIS_SIDE pixels long, so it costs a few
milliseconds even for a 600-dpi page.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from ocrd.normalize import ink_from_paper
from ocrd.vision.cleanup import component_stats

InputKind = Literal["page", "field", "digit"]

ANALYSIS_SIDE = 400
MIN_BAND_SHARE = 0.30  # a field's line of ink is at least this share of the image height
MIN_INK_IN_BAND = 0.85  # ... and holds nearly all of the image's ink
MIN_GLYPH_OF_BAND = 0.45  # glyphs span most of the band: one line, not stacked lines
# ... or the tallest glyph does: slanted or drifting writing and marks beside the digits
# (dots, dashes) lower the median, while two stacked lines' tallest glyph spans under half
# of the band they make.
MIN_TALLEST_OF_BAND = 0.55
MAX_DIGIT_ASPECT = 1.0  # one glyph is at most about as wide as it is tall
MAX_FIELD_SIDE_INCHES = 4.0  # a longer image with a truthful dpi tag is a page


def classify_input(gray: np.ndarray, dpi: int = 0) -> InputKind:
    """'field' or 'digit' when one line of ink fills the image, else 'page'."""
    height, width = gray.shape[:2]
    if dpi >= 100 and max(height, width) / dpi > MAX_FIELD_SIDE_INCHES and height > width / 2:
        return "page"  # a sheet-sized scan: forms are pages even when nearly empty
    factor = max(1.0, max(height, width) / ANALYSIS_SIDE)
    small = gray if factor == 1.0 else cv2.resize(
        gray, (max(1, round(width / factor)), max(1, round(height / factor))),
        interpolation=cv2.INTER_AREA,
    )  # fmt: skip
    stats = _not_rules(_ink_components(small))  # frame and edge lines say nothing here
    glyphs = _glyph_like(stats)
    if not len(glyphs):
        return "page"
    top = int(glyphs[:, cv2.CC_STAT_TOP].min())
    bottom = int((glyphs[:, cv2.CC_STAT_TOP] + glyphs[:, cv2.CC_STAT_HEIGHT]).max())
    band = bottom - top
    centres = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] / 2
    inside = (centres >= top) & (centres <= bottom)
    in_band = float(stats[inside, cv2.CC_STAT_AREA].sum()) / float(stats[:, cv2.CC_STAT_AREA].sum())
    heights = glyphs[:, cv2.CC_STAT_HEIGHT]
    one_line = (
        np.median(heights) >= MIN_GLYPH_OF_BAND * band
        or heights.max() >= MIN_TALLEST_OF_BAND * band
    )
    if band < MIN_BAND_SHARE * small.shape[0] or in_band < MIN_INK_IN_BAND or not one_line:
        return "page"
    left = int(stats[inside, cv2.CC_STAT_LEFT].min())
    right = int((stats[inside, cv2.CC_STAT_LEFT] + stats[inside, cv2.CC_STAT_WIDTH]).max())
    if right - left <= MAX_DIGIT_ASPECT * band and len(glyphs) <= 2:
        return "digit"
    return "field"


def _ink_components(gray: np.ndarray) -> np.ndarray:
    """Stats (x, y, w, h, area) of the ink's connected components, dust removed."""
    ink = ink_from_paper(gray)
    if int(ink.max()) == 0:
        return np.zeros((0, 5), np.int32)
    _threshold, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    _count, stats = component_stats(mask)
    stats = stats[1:]
    if not len(stats):
        return stats
    return stats[stats[:, cv2.CC_STAT_AREA] >= max(3, 0.02 * stats[:, cv2.CC_STAT_AREA].max())]


def _not_rules(stats: np.ndarray) -> np.ndarray:
    """Components other than thin rules (frame lines, underlines, the crop's edges)."""
    if not len(stats):
        return stats
    w, h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    fill = stats[:, cv2.CC_STAT_AREA] / np.maximum(1, w * h)
    rule = (fill < 0.06) | (w > 12 * np.maximum(h, 1)) | (h > 25 * np.maximum(w, 1))
    return stats[~rule]


def _glyph_like(stats: np.ndarray) -> np.ndarray:
    """The larger components: the strokes of the digits, not dots and dust."""
    if not len(stats):
        return stats
    return stats[stats[:, cv2.CC_STAT_AREA] >= 0.1 * stats[:, cv2.CC_STAT_AREA].max()]
