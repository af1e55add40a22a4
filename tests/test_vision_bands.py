"""Line refinement and erasing work on the bands of rows that hold ruled lines: the same
masks as the whole-page operations they replace (kept here as the reference)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocrd.vision import structure


def _whole_page_refine(mask, binary, run, factor):  # noqa: ANN001, ANN202
    up = cv2.resize(
        mask, (mask.shape[1] * factor, mask.shape[0] * factor), interpolation=cv2.INTER_NEAREST
    )
    full = np.zeros_like(binary)
    full[: up.shape[0], : up.shape[1]] = cv2.dilate(up, np.ones((3, 3), np.uint8))
    return cv2.bitwise_and(structure._open(binary, run), full)


def _whole_page_erase(binary, horizontal, vertical, px_per_inch):  # noqa: ANN001, ANN202
    grow = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    h_mask = cv2.dilate(horizontal, grow)
    v_mask = cv2.dilate(vertical, np.ones((1, 3), np.uint8))
    remaining = cv2.bitwise_and(binary, cv2.bitwise_not(cv2.bitwise_or(h_mask, v_mask)))
    reach = max(6, int(round(0.03 * px_per_inch)) + 5)
    across_h = cv2.morphologyEx(remaining, cv2.MORPH_CLOSE, np.ones((reach, 1), np.uint8))
    restored = across_h & h_mask & cv2.bitwise_not(v_mask)
    restored &= binary | cv2.dilate(binary, grow)
    clean = remaining | restored
    erased = (binary > 0) & (clean == 0)
    erased |= ((h_mask | v_mask) > 0) & (clean == 0)
    return clean, erased


def _ruled_page(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(binary, horizontal rules, vertical rules): rules close together and at the edges,
    strokes crossing them, and specks."""
    rng = np.random.default_rng(seed)
    binary = np.zeros((701, 523), np.uint8)
    horizontal = np.zeros_like(binary)
    vertical = np.zeros_like(binary)
    rows = [0, 5, 30, 44, 200, 212, 400, 699, *rng.integers(0, 700, 6).tolist()]
    for y in rows:
        x0 = int(rng.integers(0, 200))
        horizontal[y : y + 2, x0 : x0 + int(rng.integers(100, 400))] = 255
    for x in rng.integers(0, 520, 8).tolist():
        y0 = int(rng.integers(0, 500))
        vertical[y0 : y0 + 60, x : x + 2] = 255
    binary |= horizontal | vertical
    for _ in range(60):  # strokes, many of them across a rule
        x, y = int(rng.integers(0, 520)), int(rng.integers(0, 690))
        binary[y : y + int(rng.integers(3, 30)), x : x + 2] = 255
    binary[rng.random(binary.shape) > 0.995] = 255
    return binary, horizontal, vertical


@pytest.mark.parametrize("seed", range(6))
def test_erasing_lines_by_bands_equals_the_whole_page(seed: int) -> None:
    binary, horizontal, vertical = _ruled_page(seed)
    for ppi in (150.0, 300.0):
        clean, erased = structure._erase_lines(binary, horizontal, vertical, ppi)
        want_clean, want_erased = _whole_page_erase(binary, horizontal, vertical, ppi)
        assert np.array_equal(clean, want_clean)
        assert np.array_equal(erased > 0, want_erased)


@pytest.mark.parametrize("seed", range(6))
def test_refining_lines_by_bands_equals_the_whole_page(seed: int) -> None:
    binary, horizontal, _ = _ruled_page(seed)
    pooled = structure._max_pool(horizontal, 2)
    refined = structure._refine(pooled, binary, (45, 1), 2)
    assert refined.any()
    assert np.array_equal(refined, _whole_page_refine(pooled, binary, (45, 1), 2))
