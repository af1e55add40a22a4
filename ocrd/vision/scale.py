"""The page's scale read from its content, so a wrong or missing DPI tag does not decide it.

A form's ink is mostly printed label text, whose letters are 8-14 pt tall, plus handwritten
digits and rules. The median height of the letter-sized connected components of the
binarised working image gives pixels per inch within about 30%: enough to catch a tag that
is off by a factor of two or more (a 150-dpi scan tagged 600 dpi, a fax tagged 72). The
page is then cleaned again at the content's scale.
"""

from __future__ import annotations

import cv2
import numpy as np

GLYPH_HEIGHT_INCHES = 0.113  # median glyph height on forms (generated pages, 100-600 dpi)
MIN_GLYPHS = 25  # fewer letter-like components: no estimate
MAX_DUST_SHARE = 0.15  # more of the ink in 1-2 pixel dots than this: no estimate
DISAGREE = 1.6  # a tag within this factor of the content's estimate is believed
ANALYSIS_LONG_SIDE = 1800  # the page is measured on a copy at most this long


def glyph_pixels_per_inch(binary: np.ndarray) -> float | None:
    """Pixels per inch of a binarised (ink = 255) image from its glyph heights, or None
    when it has too few letter-like components to tell."""
    from ocrd.vision.cleanup import component_stats

    count, stats = component_stats(binary)
    if count <= 1:
        return None
    w, h = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    area = stats[1:, cv2.CC_STAT_AREA]
    fill = area / np.maximum(1, w * h)
    if area[h <= 2].sum() > MAX_DUST_SHARE * area.sum():
        return None  # strokes broken into dots (noise, blur): heights would mislead
    # Letter-like: not rules or frames, not page-sized blobs.
    glyph = (h >= 3) & (w <= 3 * h) & (h <= 6 * np.maximum(w, 1) + 8) & (fill > 0.08)
    glyph &= h < binary.shape[0] / 8
    if int(glyph.sum()) < MIN_GLYPHS:
        return None
    heights = h[glyph]
    # Noise specks can outnumber letters; they are far smaller than the largest glyphs.
    heights = heights[heights >= 0.25 * np.percentile(heights, 95)]
    if len(heights) < MIN_GLYPHS:
        return None
    median = np.median(heights)
    return float(median) / GLYPH_HEIGHT_INCHES


def content_dpi(gray: np.ndarray, shrunk: dict[int, np.ndarray] | None = None) -> float | None:
    """Dots per inch of a page from its glyph heights, whatever its tag says: measured on
    a copy shrunk by a whole factor to at most ANALYSIS_LONG_SIDE pixels (`shrunk`: see
    `ocrd.vision.cleanup.shrink_once`)."""
    from ocrd.vision.cleanup import sample_median, shrink_once

    factor = max(1, int(np.ceil(max(gray.shape[:2]) / ANALYSIS_LONG_SIDE)))
    small = shrink_once(gray, factor, shrunk) if factor > 1 else gray
    if sample_median(small[::4, ::4]) < 100:  # white on black
        small = 255 - small
    _level, binary = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    measured = glyph_pixels_per_inch(binary)
    return None if measured is None else measured * factor


def disagreement(assumed: float, measured: float | None) -> bool:
    """True when the content's scale and the assumed one differ by more than DISAGREE."""
    return measured is not None and max(assumed / measured, measured / assumed) > DISAGREE


def scale_note(tagged: int, content: float) -> str:
    return (
        f"DPI tag says {tagged} but the content looks like {content:.0f} dpi; "
        "read at the content's scale"
    )
