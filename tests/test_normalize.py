"""ocrd.normalize: shapes, ranges, determinism and the MNIST conventions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocrd.normalize import (
    DIGIT_BOX,
    DIGIT_SIZE,
    LINE_HEIGHT,
    LINE_INK_HEIGHT,
    MAX_LINE_WIDTH,
    ink_from_paper,
    normalize_digit,
    normalize_line,
)


def _drawn_digit(text: str = "7", size: tuple = (90, 70), scale: float = 2.5) -> np.ndarray:
    crop = np.zeros(size, np.uint8)
    cv2.putText(crop, text, (8, size[0] - 15), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 6)
    return crop


def _ink_box(image: np.ndarray, level: float = 0.05) -> tuple[int, int]:
    rows = np.flatnonzero((image > level).any(axis=1))
    cols = np.flatnonzero((image > level).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    total = image.sum()
    return float((ys * image).sum() / total), float((xs * image).sum() / total)


def test_digit_shape_dtype_and_range():
    digit = normalize_digit(_drawn_digit())
    assert digit.shape == (DIGIT_SIZE, DIGIT_SIZE)
    assert digit.dtype == np.float32
    assert digit.min() >= 0.0 and digit.max() <= 1.0
    assert digit.max() > 0.9  # contrast is stretched to full range


def test_digit_fits_the_20_pixel_box_and_is_centred_by_mass():
    digit = normalize_digit(_drawn_digit("4", size=(120, 200), scale=3.5))
    height, width = _ink_box(digit)
    assert max(height, width) <= DIGIT_BOX + 2  # anti-aliasing may add a pixel each side
    assert max(height, width) >= DIGIT_BOX - 2
    row, col = _centre_of_mass(digit)
    centre = (DIGIT_SIZE - 1) / 2
    assert abs(row - centre) < 0.6 and abs(col - centre) < 0.6


def test_digit_is_independent_of_crop_position_and_size():
    small = _drawn_digit("3")
    big = np.zeros((300, 400), np.uint8)
    big[150 : 150 + small.shape[0], 220 : 220 + small.shape[1]] = small
    assert np.abs(normalize_digit(small) - normalize_digit(big)).max() < 1e-5


def test_digit_is_deterministic_and_leaves_input_alone():
    crop = _drawn_digit("5")
    before = crop.copy()
    first, second = normalize_digit(crop), normalize_digit(crop)
    assert np.array_equal(first, second)
    assert np.array_equal(crop, before)


def test_blank_and_faint_crops_give_zeros():
    assert not normalize_digit(np.zeros((40, 30), np.uint8)).any()
    assert not normalize_digit(np.full((40, 30), 5, np.uint8)).any()


def test_mnist_digits_stay_close_to_themselves():
    """MNIST is already in the convention, so re-normalising barely changes it."""
    from training.readers import load_mnist

    try:
        images, _ = load_mnist("t10k")
    except ValueError as exc:
        pytest.skip(f"MNIST not available: {exc}")
    for image in images[:50]:
        original = image / 255.0
        digit = normalize_digit(image)
        assert np.allclose(_centre_of_mass(digit), _centre_of_mass(original), atol=1.0)
        assert np.allclose(_ink_box(digit, 0.3), _ink_box(original, 0.3), atol=2)


def test_colour_and_wrong_rank_inputs():
    colour = np.repeat(_drawn_digit()[..., None], 3, axis=2)
    assert normalize_digit(colour).shape == (DIGIT_SIZE, DIGIT_SIZE)
    with pytest.raises(ValueError):
        normalize_digit(np.zeros((2, 3, 4, 5), np.uint8))


def _drawn_line(text: str, height: int = 60) -> np.ndarray:
    (width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.5, 3)
    crop = np.zeros((height, width + 40), np.uint8)
    cv2.putText(crop, text, (20, height - 15), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 255, 3)
    return crop


def test_line_height_and_aspect():
    crop = _drawn_line("12345")
    line = normalize_line(crop)
    assert line.dtype == np.float32 and line.shape[0] == LINE_HEIGHT
    height, width = _ink_box(line, 0.25)
    ink_rows = np.flatnonzero((crop > 64).any(axis=1))
    ink_cols = np.flatnonzero((crop > 64).any(axis=0))
    source_aspect = (ink_cols[-1] - ink_cols[0] + 1) / (ink_rows[-1] - ink_rows[0] + 1)
    assert abs(height - LINE_INK_HEIGHT) <= 1
    assert abs(width / height - source_aspect) < 0.15 * source_aspect


def test_faint_writing_keeps_its_extent_beside_a_few_dark_speckles():
    # Blurred grey writing (ink ~50 of 255) with two speckle dots at full ink: the dots must
    # not set the ink level, or the writing falls below it and the line is one dot blown up.
    crop = (_drawn_line("95170").astype(np.float32) * 50 / 255).astype(np.uint8)
    alone = normalize_line(crop)
    height, width = crop.shape
    crop[30:33, 40:43] = 255  # both inside the writing's box
    crop[36:39, width // 2 : width // 2 + 3] = 255
    line = normalize_line(crop)
    assert abs(line.shape[1] - alone.shape[1]) <= 0.1 * alone.shape[1]
    assert line.max() == pytest.approx(1.0) and np.mean(line > 0.5) > 0.05
    digit = normalize_digit(crop[:, : width // 5])
    assert digit.max() == pytest.approx(1.0, abs=0.05)


def test_longer_strings_give_wider_lines_and_the_width_is_capped():
    short = normalize_line(_drawn_line("12"))
    long = normalize_line(_drawn_line("1234567890"))
    assert long.shape[1] > 3 * short.shape[1]
    huge = normalize_line(_drawn_line("1234567890" * 6))
    assert huge.shape == (LINE_HEIGHT, MAX_LINE_WIDTH)


def test_line_is_deterministic_and_blank_is_blank():
    crop = _drawn_line("907")
    assert np.array_equal(normalize_line(crop), normalize_line(crop))
    blank = normalize_line(np.zeros((50, 100), np.uint8))
    assert blank.shape[0] == LINE_HEIGHT and not blank.any()


def test_ink_from_paper_inverts_dark_ink_and_flattens_a_gradient():
    paper = np.tile(np.linspace(150, 240, 300), (80, 1)).astype(np.uint8)  # uneven lighting
    cv2.putText(paper, "42", (40, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.8, 30, 4)
    ink = ink_from_paper(paper)
    strokes = paper < 100
    assert ink.dtype == np.uint8 and ink.shape == paper.shape
    assert ink[strokes].mean() > 150  # strokes are bright
    assert (ink[~strokes] == 0).mean() > 0.9  # the shaded paper is gone
