"""Page clean-up: working resolution, background flattening, binarisation, deskew.

Everything downstream works on an INK-BRIGHT image (ink high, paper 0) at a reduced
"working" resolution (~150 dpi), which keeps a 300-dpi A4 page fast while digits stay
30+ pixels tall, comfortably more than the 20-pixel box the models see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

WORK_DPI = 150.0
A4_LONG_SIDE_INCHES = 11.69
MAX_SKEW_DEGREES = 10.0
# Images this small without a dpi are snapshots (a digit drawn in Paint, a photo crop),
# not scanned pages: they are read as a whole at their own size.
SNAPSHOT_MAX_SIDE = 1000


@dataclass
class CleanPage:
    """The page ready for structure and field finding, plus how to map back to the page."""

    ink: np.ndarray  # uint8 ink-bright, deskewed, at working resolution
    binary: np.ndarray  # uint8 0/255 mask of ink (same geometry as `ink`)
    scale: float  # working pixels per page pixel
    to_page: np.ndarray  # 2x3 affine: deskewed working coords -> page coords
    px_per_inch: float  # working pixels per inch (estimated when the file has no dpi)
    angle: float  # skew that was removed, degrees
    snapshot: bool  # small image without dpi: read as a whole (single digit / short number)


def clean_page(
    gray: np.ndarray,
    dpi: int,
    snapshot: bool | None = None,
    shrunk: dict[int, np.ndarray] | None = None,
) -> CleanPage:
    """Grayscale page -> flattened, binarised, deskewed ink image at working resolution.

    `snapshot` (default: decided from size and dpi) reads the image as one drawing: no
    deskew, no form structure, scale taken from the picture rather than from the dpi.
    `shrunk`: copies of `gray` already shrunk, by factor (`shrink_once`)."""
    height, width = gray.shape
    if snapshot is None:  # no dpi, or a screen/camera default, and small: not a page scan
        snapshot = dpi < 100 and max(height, width) <= SNAPSHOT_MAX_SIDE
    if snapshot:
        factor = max(
            1, min(math.ceil(max(height, width) / SNAPSHOT_MAX_SIDE), min(height, width) // 8)
        )
        scale = 1.0 / factor
        px_per_inch = max(height, width) * scale / 1.5  # the drawing fills the picture
    else:
        page_dpi = dpi if dpi > 0 else max(height, width) / A4_LONG_SIDE_INCHES
        # An integer shrink factor keeps OpenCV's fast area-averaging path (~10x faster).
        factor = max(1, min(int(page_dpi / WORK_DPI + 0.25), min(height, width) // 8))
        scale = 1.0 / factor
        px_per_inch = page_dpi * scale
    small = gray if scale == 1.0 else shrink_once(gray, round(1 / scale), shrunk)
    ink = ink_image(small)
    threshold = ink_threshold(ink)
    binary = _binarise(ink, threshold)
    angle = 0.0 if snapshot else estimate_skew(binary)
    to_page = np.array([[1 / scale, 0, 0], [0, 1 / scale, 0]], np.float64)
    if abs(angle) >= 0.15:
        ink, rotation = _rotate(ink, angle)
        binary = _binarise(ink, threshold)
        inverse = cv2.invertAffineTransform(rotation)
        to_page = np.vstack([to_page, [0, 0, 1]])[:2] @ np.vstack([inverse, [0, 0, 1]])
    return CleanPage(ink, binary, scale, to_page, px_per_inch, angle, snapshot)


def components(binary: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components: (count, labels, stats), as OpenCV's BBDT labels them on the
    whole image, but found on its inked rows only: the bands of rows with ink, stacked two
    blank rows apart, cut to the inked columns (a form's masks are 60-99% paper).

    Bands and the column cut start on even pixels: BBDT works on 2x2 blocks, and on the
    same block grid it numbers components in the same order as on the whole image (by the
    first block in raster order), so labels and stats are the whole image's. Even sides
    also keep BBDT fast (OpenCV 5.0: 14 ms on a 1753 x 1240 page, 6 ms on 1754 rows).
    stats[0] is the background: the whole image, its area the paper pixels."""
    labels = np.zeros(binary.shape, np.int32)
    count, stats = _stacked_components(binary, labels)
    return count, labels, stats


def component_stats(binary: np.ndarray) -> tuple[int, np.ndarray]:
    """(count, stats) of `components`, without the page-sized label image."""
    return _stacked_components(binary, None)


def _stacked_components(binary: np.ndarray, labels: np.ndarray | None) -> tuple[int, np.ndarray]:
    """`components` (module doc); writes the labels into `labels` when it is given."""
    height, width = binary.shape
    bands = _even_bands(binary.max(axis=1) > 0, BAND_GAP)  # numpy: 60x cv2.reduce's speed
    if not bands:
        return 1, np.array([[0, 0, width, height, height * width]], np.int32)
    sizes = np.array([bottom - top for top, bottom in bands])
    at = np.concatenate([[0], np.cumsum(sizes + 2)[:-1]])  # each band's first stacked row
    if len(bands) == 1:
        stacked = binary[bands[0][0] : bands[0][1]]
    else:
        stacked = np.zeros((int(at[-1] + sizes[-1]), width), np.uint8)
        for (top, bottom), row in zip(bands, at.tolist(), strict=True):
            stacked[row : row + bottom - top] = binary[top:bottom]
    inked = np.flatnonzero(stacked.max(axis=0))
    left, right = int(inked[0]) & ~1, min(width, (int(inked[-1]) + 2) & ~1)
    count, stacked_labels, stats = _even_components(stacked[:, left:right])
    if labels is not None:
        for (top, bottom), row in zip(bands, at.tolist(), strict=True):
            labels[top:bottom, left:right] = stacked_labels[row : row + bottom - top]
    stats = stats[:, :5].copy()
    band = np.searchsorted(at, stats[1:, cv2.CC_STAT_TOP], side="right") - 1
    shift = np.array([top for top, _ in bands]) - at
    stats[1:, cv2.CC_STAT_TOP] += shift[band].astype(np.int32)
    stats[1:, cv2.CC_STAT_LEFT] += left
    stats[0] = (0, 0, width, height, height * width - int(stats[1:, cv2.CC_STAT_AREA].sum()))
    return count, stats


BAND_GAP = 4  # blank rows closer than this stay inside one band


def _even_bands(inked_rows: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """[top, bottom) row ranges holding every inked row, on even boundaries; bands closer
    than `gap` are joined. No component crosses a blank row, so none spans two bands."""
    rows = np.flatnonzero(inked_rows)
    if not len(rows):
        return []
    breaks = np.flatnonzero(np.diff(rows) > gap)
    starts = np.concatenate([[rows[0]], rows[breaks + 1]]) & ~1
    ends = np.minimum(len(inked_rows), (np.concatenate([rows[breaks], [rows[-1]]]) + 2) & ~1)
    bands: list[tuple[int, int]] = []
    for top, bottom in zip(starts.tolist(), ends.tolist(), strict=True):
        if bands and top <= bands[-1][1]:  # rounding to even made them touch
            bands[-1] = (bands[-1][0], bottom)
        else:
            bands.append((top, bottom))
    return bands


def _even_components(binary: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """BBDT on an image padded to even sides (a blank row/column; labels cut back)."""
    height, width = binary.shape
    if height % 2 or width % 2:
        padded = np.zeros((height + height % 2, width + width % 2), binary.dtype)
        padded[:height, :width] = binary
        binary = padded
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        binary, 8, cv2.CV_32S, cv2.CCL_BBDT
    )
    return count, labels[:height, :width], stats


def shrink_once(gray: np.ndarray, factor: int, shrunk: dict[int, np.ndarray] | None) -> np.ndarray:
    """`gray` shrunk by `factor`, made once per factor when a `shrunk` dict is shared: the
    content-scale check and the clean-up of a 300-dpi page both shrink it by 2."""
    if shrunk is None:
        return _shrink(gray, factor)
    if factor not in shrunk:
        shrunk[factor] = _shrink(gray, factor)
    return shrunk[factor]


def _shrink(gray: np.ndarray, factor: int) -> np.ndarray:
    """Area-average by an integer factor (the last < factor rows/columns are dropped)."""
    height, width = (gray.shape[0] // factor), (gray.shape[1] // factor)
    trimmed = gray[: height * factor, : width * factor]
    return cv2.resize(trimmed, (width, height), interpolation=cv2.INTER_AREA)


def ink_image(gray: np.ndarray) -> np.ndarray:
    """Paper-relative ink darkness: flattens grey paper, shadows and uneven lighting.

    The paper level is a max-filter (strokes are thinner than the window) of a 4x smaller
    copy, smoothed and scaled back; ink = paper - pixel. Dark-background images (white
    digit on black, MNIST style) are inverted first.
    """
    if sample_median(gray[::4, ::4]) < 100:  # a sample decides as well, 8x cheaper
        gray = 255 - gray
    h, w = gray.shape
    coarse = _shrink(gray, 4) if min(h, w) >= 4 else gray
    window = max(3, (min(coarse.shape) // 40) | 1)
    window = min(window, 9)
    paper = cv2.dilate(coarse, cv2.getStructuringElement(cv2.MORPH_RECT, (window, window)))
    paper = cv2.blur(paper, (window, window))
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    # Darkness relative to the local paper, so grey paper and shadows look white.
    ink = cv2.subtract(paper, gray)
    return cv2.divide(ink, np.maximum(paper, 64), scale=255.0)


def sample_median(sample: np.ndarray) -> float:
    """np.median of a uint8 array (the mean of the two middle values), from its histogram:
    a 256-bin count is ~5x cheaper than partitioning the sample."""
    counts = np.cumsum(np.bincount(sample.ravel(), minlength=256))
    total = int(counts[-1]) if sample.size else 0
    if total == 0:
        return float("nan")
    low = int(np.searchsorted(counts, (total - 1) // 2, side="right"))
    high = int(np.searchsorted(counts, total // 2, side="right"))
    return (low + high) / 2


def ink_threshold(ink: np.ndarray) -> float:
    """A binarisation level above the paper noise but low enough for faint pencil.

    Paper pixels are the dark end of the ink image; their median and spread (MAD) come
    from a 60-bin histogram, which is much cheaper than sorting the page."""
    counts = cv2.calcHist([ink[::2, ::2]], [0], None, [60], [0, 60]).ravel()
    total = counts.sum()
    if total == 0:
        return 50.0
    cumulative = np.cumsum(counts)
    centre = float(np.searchsorted(cumulative, total / 2))
    deviation = np.abs(np.arange(60) - centre)
    order = np.argsort(deviation, kind="stable")
    mad = float(deviation[order][np.searchsorted(np.cumsum(counts[order]), total / 2)])
    noise = 1.4826 * mad  # robust sigma
    return float(np.clip(centre + 5.0 * noise, 28.0, 100.0))


def _binarise(ink: np.ndarray, threshold: float) -> np.ndarray:
    _, binary = cv2.threshold(ink, threshold, 255, cv2.THRESH_BINARY)
    return binary


def estimate_skew(binary: np.ndarray) -> float:
    """Skew in degrees (+-10) that maximises the sharpness of the row profile of the ink.

    Rows of text and ruled lines give a spiky horizontal projection only when level; we
    shear ink pixel coordinates instead of rotating the image, so each angle costs a bincount.
    """
    # findNonZero lists (x, y) in row-major order as np.nonzero does, 4x faster.
    points = cv2.findNonZero(np.ascontiguousarray(binary[::2, ::2]))
    if points is None or len(points) < 50:
        return 0.0
    points = points.reshape(-1, 2)
    if len(points) > 20_000:  # an even stride samples every row of text alike
        points = points[:: -(-len(points) // 20_000)]
    ys = points[:, 1].astype(np.float32)
    xs = points[:, 0].astype(np.float32) - binary.shape[1] / 4

    def sharpest(degrees: np.ndarray) -> float:
        """The angle whose sheared row profile has the largest sum of squared counts: all
        angles in one bincount (each angle's rows offset past the previous angle's)."""
        # Scalar tan per angle, the exact float64 slopes of the angle-by-angle search.
        slopes = np.array([np.tan(np.radians(degree)) for degree in degrees])
        # float64 like the one-angle-at-a-time search; in place, as the arrays are large.
        shifted = np.multiply(xs[None, :], slopes[:, None])
        np.subtract(ys[None, :], shifted, out=shifted)
        shifted -= shifted.min(axis=1, keepdims=True)
        rows = shifted.astype(np.intp)  # truncated as astype(int32) does; bincount's type
        sizes = rows.max(axis=1) + 1
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows += starts[:, None]
        counts = np.bincount(rows.ravel(), minlength=int(sizes.sum()))
        squares = counts.astype(np.int64) ** 2
        return degrees[int(np.argmax(np.add.reduceat(squares, starts)))]  # first best, as max()

    best = sharpest(np.arange(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES + 0.01, 0.5))
    best = sharpest(np.arange(best - 0.5, best + 0.51, 0.1))
    # Image y points down, so a positive shear slope is a clockwise tilt.
    return float(round(best, 2))


def _rotate(ink: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate so the page is level; returns the image and the 2x3 page->level matrix."""
    h, w = ink.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    level = cv2.warpAffine(ink, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    return level, matrix
