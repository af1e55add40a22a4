"""The faster forms of vision's hot steps give exactly what the plain ones gave: connected
components found band by band equal OpenCV's on the whole image (labels, numbering and
stats), and the one-bincount skew search picks the angle the angle-by-angle search picked.
Digit crops normalise byte for byte as before (training shares `ocrd.normalize`). The plain
forms are kept here as the reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocrd import normalize
from ocrd.types import Page
from ocrd.vision import fields as vision_fields
from ocrd.vision import find_fields
from ocrd.vision.cleanup import (
    clean_page,
    component_stats,
    components,
    estimate_skew,
    sample_median,
)
from ocrd.vision.structure import find_structure
from training.forms import DigitBank, render_page


def _whole_image_components(binary: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        binary, 8, cv2.CV_32S, cv2.CCL_BBDT
    )
    return count, labels, stats


def _angle_by_angle_skew(binary: np.ndarray) -> float:
    ys, xs = np.nonzero(binary[::2, ::2])
    if len(ys) < 50:
        return 0.0
    if len(ys) > 20_000:
        step = -(-len(ys) // 20_000)
        ys, xs = ys[::step], xs[::step]
    ys = ys.astype(np.float32)
    xs = xs.astype(np.float32) - binary.shape[1] / 4

    def sharpness(degrees: float) -> float:
        shifted = ys - xs * np.tan(np.radians(degrees))
        counts = np.bincount((shifted - shifted.min()).astype(np.int32))
        return float(np.dot(counts, counts))

    best = max(np.arange(-10.0, 10.01, 0.5), key=sharpness)
    best = max(np.arange(best - 0.5, best + 0.51, 0.1), key=sharpness)
    return float(round(best, 2))


def _assert_same_components(binary: np.ndarray) -> int:
    count, labels, stats = components(binary)
    want_count, want_labels, want_stats = _whole_image_components(binary)
    assert count == want_count
    assert labels.shape == binary.shape and labels.dtype == np.int32
    assert np.array_equal(labels, want_labels)
    assert np.array_equal(stats[1:], want_stats[1:, :5])
    assert stats[0, cv2.CC_STAT_AREA] == int((binary == 0).sum())
    stats_count, stats_only = component_stats(binary)
    assert stats_count == count and np.array_equal(stats_only, stats)
    return count


def _plain_normalize_digit(crop: np.ndarray) -> np.ndarray:
    """normalize_digit before its extent came from cv2.boundingRect and its clips in place."""
    crop = normalize._as_gray_uint8(crop)
    peak = normalize._ink_peak(crop)
    if peak < normalize.MIN_INK_LEVEL:
        return np.zeros((28, 28), np.float32)
    mask = crop >= max(normalize.MIN_INK_LEVEL, normalize.INK_FRACTION * peak)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    ink = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    ink = np.minimum(ink / peak, 1.0)
    height, width = ink.shape
    scale = 20 / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    ink = cv2.resize(ink, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((28, 28), np.float32)
    y0, x0 = (28 - new_h) // 2, (28 - new_w) // 2
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = ink
    moments = cv2.moments(canvas)
    if moments["m00"] > 0:
        shift_y = float(np.clip(13.5 - moments["m01"] / moments["m00"], -y0, 28 - y0 - new_h))
        shift_x = float(np.clip(13.5 - moments["m10"] / moments["m00"], -x0, 28 - x0 - new_w))
        matrix = np.float32([[1, 0, shift_x], [0, 1, shift_y]])
        canvas = cv2.warpAffine(canvas, matrix, (28, 28), flags=cv2.INTER_LINEAR)
    return np.clip(canvas, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def rendered() -> list:
    bank = DigitBank.load("t10k")
    rng = np.random.default_rng(15)
    made = []
    for dpi, degradation in ((150, "clean"), (300, "clean"), (200, "noisy"), (300, "skewed")):
        made.append(render_page(bank, rng, dpi=dpi, degradation=degradation))
    return made


@pytest.fixture(scope="module")
def pages(rendered) -> list:
    return [clean_page(page.image, page.dpi) for page in rendered]


def test_banded_components_equal_the_whole_page_on_real_pages(pages) -> None:
    for clean in pages:
        assert _assert_same_components(clean.binary) > 100
        structure = find_structure(clean.ink, clean.binary, clean.px_per_inch)
        _assert_same_components(structure.binary)  # the mask fields are grouped from


@pytest.mark.parametrize("seed", range(8))
def test_banded_components_equal_the_whole_image_at_odd_sizes_and_edges(seed: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(40, 400, 2))
    binary = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 40))):  # blobs and rules, some at the very edges
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        binary[y : y + int(rng.integers(1, 30)), x : x + int(rng.integers(1, 60))] = 255
    binary[rng.random(binary.shape) > 0.997] = 255  # lone specks, diagonal neighbours
    binary[-1, -1] = binary[0, 0] = 255
    _assert_same_components(binary)


def test_components_of_a_blank_image() -> None:
    count, labels, stats = components(np.zeros((31, 17), np.uint8))
    assert count == 1 and not labels.any()
    assert stats.tolist() == [[0, 0, 17, 31, 31 * 17]]


def test_one_bincount_skew_search_equals_the_angle_by_angle_one(pages) -> None:
    rng = np.random.default_rng(3)
    for clean in pages:
        binary = clean.binary
        for angle in (0.0, *rng.uniform(-9, 9, 3)):
            h, w = binary.shape
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), 1.0)
            tilted = cv2.warpAffine(binary, matrix, (w, h), flags=cv2.INTER_NEAREST)
            assert estimate_skew(tilted) == _angle_by_angle_skew(tilted)
    few = np.zeros((60, 60), np.uint8)
    few[5, :40] = 255  # 20 sampled pixels: too few to tell
    assert estimate_skew(few) == _angle_by_angle_skew(few) == 0.0


def test_digit_crops_normalise_byte_for_byte_as_before(rendered, monkeypatch) -> None:
    crops: list[np.ndarray] = []

    def keep(crop: np.ndarray) -> np.ndarray:
        crops.append(crop.copy())
        return normalize.normalize_digit(crop)

    monkeypatch.setattr(vision_fields, "normalize_digit", keep)
    for page in rendered:
        find_fields(Page(1, page.image, page.dpi))
    assert len(crops) > 100
    rng = np.random.default_rng(7)
    for _ in range(200):  # odd shapes: slivers, specks, faint and saturated ink, blanks
        height, width = (int(v) for v in rng.integers(1, 90, 2))
        crop = (rng.random((height, width)) * rng.integers(1, 256)).astype(np.uint8)
        crop[rng.random((height, width)) < rng.random()] = 0
        crops.append(crop)
    crops.append(np.zeros((12, 9), np.uint8))
    for crop in crops:
        assert normalize.normalize_digit(crop).tobytes() == _plain_normalize_digit(crop).tobytes()


def test_sample_median_is_numpys_median() -> None:
    rng = np.random.default_rng(11)
    for size in (1, 2, 3, 4, 17, 1000, 4097):
        for high in (2, 30, 256):
            sample = rng.integers(0, high, size).astype(np.uint8)
            assert sample_median(sample) == float(np.median(sample))
    image = rng.integers(0, 256, (101, 77)).astype(np.uint8)
    assert sample_median(image[::4, ::4]) == float(np.median(image[::4, ::4]))
    assert np.isnan(sample_median(np.zeros((0, 5), np.uint8)))
