"""The page's scale read from its content, so a wrong or missing DPI tag does not decide it.

A form's ink is mostly printed label text, whose letters are 8-14 pt tall, plus handwritten
digits and rules. The median height of the letter-sized connected components, measured on a
small copy of the page, gives pixels per inch within about 30%: enough to catch a tag that
is off by a factor of two or more (a 150-dpi scan tagged 600 dpi, a fax tagged 72).
"""

from __future__ import annotations

import cv2
import numpy as np

GLYPH_HEIGHT_INCHES = 0.108  # median glyph height on forms (generated pages, 100-600 dpi)
MIN_GLYPHS = 25  # fewer letter-like components: no estimate
DISAGREE = 1.6  # a tag within this factor of the content's estimate is believed
ANALYSIS_LONG_SIDE = 1400


def content_dpi(gray: np.ndarray) -> float | None:
    """Dots per inch estimated from glyph heights, or None when the page has too few."""
    height, width = gray.shape[:2]
    factor = max(1, int(max(height, width) / ANALYSIS_LONG_SIDE))
    small = gray if factor == 1 else cv2.resize(
        gray, (width // factor, height // factor), interpolation=cv2.INTER_AREA
    )  # fmt: skip
    if float(np.median(small[::4, ::4])) < 100:
        small = 255 - small
    small = cv2.medianBlur(small, 3)  # scanner noise and speckle are not glyphs
    _threshold, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return None
    w, h = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    area = stats[1:, cv2.CC_STAT_AREA]
    fill = area / np.maximum(1, w * h)
    # Letter-like: not specks, not rules or frames, not page-sized blobs.
    glyph = (h >= 4) & (w <= 3 * h) & (h <= 6 * np.maximum(w, 1) + 8) & (fill > 0.08)
    glyph &= h < small.shape[0] / 8
    if int(glyph.sum()) < MIN_GLYPHS:
        return None
    return float(np.median(h[glyph])) * factor / GLYPH_HEIGHT_INCHES


def effective_dpi(gray: np.ndarray, tagged: int) -> tuple[int, str | None]:
    """(dpi to use, a note when the tag was overruled or missing and estimated)."""
    estimate = content_dpi(gray)
    if estimate is None:
        return tagged, None
    if tagged <= 0:
        return int(round(estimate)), None
    if max(tagged / estimate, estimate / tagged) > DISAGREE:
        return (
            int(round(estimate)),
            f"DPI tag says {tagged} but the content looks like {estimate:.0f} dpi; "
            "read at the content's scale",
        )
    return tagged, None
