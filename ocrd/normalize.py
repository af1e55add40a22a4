"""The one place where crops become model inputs.

Both `training/` and inference import these functions, so training and serving can
never drift apart. Convention for inputs: uint8 grayscale crops with INK BRIGHT
(255) on a dark (0) background, i.e. already inverted from paper. `ink_from_paper`
does that inversion (with background flattening) for dark-ink-on-paper images.
"""

from __future__ import annotations

import cv2
import numpy as np

DIGIT_SIZE = 28  # MNIST convention: digit in a 20x20 box, centred by centre of mass
DIGIT_BOX = 20
LINE_HEIGHT = 32  # sequence recognizer input height
LINE_INK_HEIGHT = 28  # ink rows of a line; the rest is a 2-pixel margin top and bottom
LINE_MARGIN = 2
MAX_LINE_WIDTH = 512  # lines are padded/bucketed up to this width; wider ones are squeezed
MIN_LINE_WIDTH = 8

# Pixels below this share of the crop's brightest value count as background when
# finding the ink's extent (anti-aliasing and scan noise stay out of the box).
INK_FRACTION = 0.25
# A crop whose brightest pixel is below this is treated as blank.
MIN_INK_LEVEL = 16
INK_PEAK_PERCENTILE = 99
SPECK_SHARE = 0.05  # pixels at half the brightest level or more, as a share of the inked


def _ink_peak(crop: np.ndarray) -> float:  # crop: uint8
    """The crop's ink level: its brightest pixel, unless only a few specks reach even half
    of it (then the 99th percentile of the inked pixels). Speckle dots far darker than faint,
    blurred writing would otherwise set the level, and the writing would fall below
    INK_FRACTION of it and vanish."""
    brightest = int(crop.max()) if crop.size else 0
    if brightest < MIN_INK_LEVEL:
        return float(brightest)  # blank
    counts = np.bincount(crop.ravel(), minlength=256)[MIN_INK_LEVEL:]
    inked = int(counts.sum())
    if counts[(brightest + 1) // 2 - MIN_INK_LEVEL :].sum() >= SPECK_SHARE * inked:
        return float(brightest)
    above = np.cumsum(counts[::-1])  # pixels at or above each level, brightest first
    level = 255 - int(np.searchsorted(above, (100 - INK_PEAK_PERCENTILE) / 100 * inked))
    return float(max(MIN_INK_LEVEL, level))


def _ink_extent(crop: np.ndarray, peak: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the ink at level `peak` (not blank), bottom/right
    exclusive."""
    mask = crop >= max(MIN_INK_LEVEL, INK_FRACTION * peak)
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))  # of the nonzero pixels
    return y, y + h, x, x + w


def _as_gray_uint8(crop: np.ndarray) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.ndim == 3:
        crop = crop[..., 0] if crop.shape[2] == 1 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    if crop.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale crop, got shape {crop.shape}")
    if crop.dtype != np.uint8:
        crop = np.clip(crop, 0, 255).astype(np.uint8)
    return crop


def _stretch(image: np.ndarray, peak: float) -> np.ndarray:
    """float32 in [0, 1] with the ink level `peak` at 1: scans vary in ink darkness."""
    image = image.astype(np.float32)
    if peak > 0:  # in place: the same float32 ops without two temporaries
        np.minimum(np.divide(image, peak, out=image), 1.0, out=image)
    return image


def _trimmed_ink(crop: np.ndarray) -> np.ndarray | None:
    """The crop cut to its ink and stretched to [0, 1]; None when it holds no ink."""
    crop = _as_gray_uint8(crop)
    peak = _ink_peak(crop)
    if peak < MIN_INK_LEVEL:
        return None
    top, bottom, left, right = _ink_extent(crop, peak)
    return _stretch(crop[top:bottom, left:right], peak)


def normalize_digit(crop: np.ndarray) -> np.ndarray:
    """Ink-bright uint8 crop of one digit -> float32 (28, 28) in [0, 1], MNIST convention.

    The ink's bounding box is scaled (aspect kept) to fit a 20x20 box, then placed so its
    centre of mass sits at the centre of the 28x28 frame. A blank crop gives all zeros.
    """
    ink = _trimmed_ink(crop)
    if ink is None:
        return np.zeros((DIGIT_SIZE, DIGIT_SIZE), np.float32)
    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    new_h = max(1, round(height * scale))
    new_w = max(1, round(width * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    ink = cv2.resize(ink, (new_w, new_h), interpolation=interpolation)

    # Put the box in the middle, then move it so the centre of mass is at the centre.
    canvas = np.zeros((DIGIT_SIZE, DIGIT_SIZE), np.float32)
    y0 = (DIGIT_SIZE - new_h) // 2
    x0 = (DIGIT_SIZE - new_w) // 2
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = ink
    moments = cv2.moments(canvas)
    total = moments["m00"]
    if total > 0:
        centre = (DIGIT_SIZE - 1) / 2
        shift_y = centre - moments["m01"] / total
        shift_x = centre - moments["m10"] / total
        # Never push ink out of the frame: keep the box inside [0, 28).
        shift_y = float(min(max(shift_y, -y0), DIGIT_SIZE - y0 - new_h))  # np.clip's order
        shift_x = float(min(max(shift_x, -x0), DIGIT_SIZE - x0 - new_w))
        matrix = np.float32([[1, 0, shift_x], [0, 1, shift_y]])
        canvas = cv2.warpAffine(canvas, matrix, (DIGIT_SIZE, DIGIT_SIZE), flags=cv2.INTER_LINEAR)
    # np.clip's min(max()) as two plain ufuncs (np.clip's wrapper costs more than the work).
    return np.minimum(np.maximum(canvas, 0.0, out=canvas), 1.0, out=canvas)


def normalize_line(crop: np.ndarray) -> np.ndarray:
    """Ink-bright uint8 crop of a digit string -> float32 (LINE_HEIGHT, W) in [0, 1].

    The crop is trimmed to its ink, scaled (aspect kept) so the ink is LINE_INK_HEIGHT
    rows tall with a LINE_MARGIN on every side; lines wider than MAX_LINE_WIDTH are
    squeezed horizontally to fit. A blank crop gives a blank (32, MIN_LINE_WIDTH) line.
    """
    ink = _trimmed_ink(crop)
    if ink is None:
        return np.zeros((LINE_HEIGHT, MIN_LINE_WIDTH), np.float32)
    height, width = ink.shape
    scale = LINE_INK_HEIGHT / height
    inner_w = max(1, round(width * scale))
    inner_w = min(inner_w, MAX_LINE_WIDTH - 2 * LINE_MARGIN)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    ink = cv2.resize(ink, (inner_w, LINE_INK_HEIGHT), interpolation=interpolation)
    total_w = max(MIN_LINE_WIDTH, inner_w + 2 * LINE_MARGIN)
    line = np.zeros((LINE_HEIGHT, total_w), np.float32)
    line[LINE_MARGIN : LINE_MARGIN + LINE_INK_HEIGHT, LINE_MARGIN : LINE_MARGIN + inner_w] = ink
    return np.clip(line, 0.0, 1.0)


def shear_ink(image: np.ndarray, amount: float) -> np.ndarray:
    """Ink-bright uint8 image slanted by `amount` (x shift per row, about the middle row),
    widened so no ink leaves the canvas. Training slants its strings with it; reading
    slants a field image's variants (`ocrd.line_votes`)."""
    height = image.shape[0]
    pad = int(abs(amount) * height) + 2
    image = cv2.copyMakeBorder(image, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0)
    matrix = np.float32([[1, amount, -amount * height / 2], [0, 1, 0]])
    return cv2.warpAffine(image, matrix, (image.shape[1], height))


def ink_from_paper(gray: np.ndarray) -> np.ndarray:
    """Dark ink on (possibly patterned or uneven) paper -> uint8 ink-bright on black.

    The paper is estimated with a large median blur and subtracted, so security-paper
    patterns and shading fade while strokes stay; the result is stretched so the
    strongest ink is 255 and faint residue below an Otsu threshold's half is zeroed.
    """
    gray = _as_gray_uint8(gray)
    size = max(3, (min(gray.shape[:2]) // 2) | 1)
    size = min(size, 31)
    background = cv2.medianBlur(gray, size)
    ink = cv2.subtract(background, gray)
    if int(ink.max()) == 0:
        return ink
    ink = cv2.normalize(ink, None, 0, 255, cv2.NORM_MINMAX)
    threshold, _ = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink[ink < threshold / 2] = 0
    return ink
