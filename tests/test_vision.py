"""Field finding on generated form pages (MNIST t10k digits), checked against the generator's
ground truth; clean-up, deskew and line removal on hand-drawn images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocrd.normalize import LINE_HEIGHT, normalize_digit
from ocrd.types import Page
from ocrd.vision import fields as vision_fields
from ocrd.vision import find_fields
from ocrd.vision.cleanup import clean_page, components, estimate_skew
from ocrd.vision.structure import find_structure
from training.forms import DigitBank, FormPage, best_match, iou, render_page


@pytest.fixture(scope="module")
def bank() -> DigitBank:
    return DigitBank.load("t10k")


def _page(bank, seed: int, dpi: int = 150, degradation: str = "clean") -> FormPage:
    return render_page(bank, np.random.default_rng(seed), dpi=dpi, degradation=degradation)


def _matches(page: FormPage):
    """(truth, best found field or None) for every truth field, and the unmatched fields."""
    fields = find_fields(Page(1, page.image, page.dpi))
    pairs, used = [], set()
    for truth in page.fields:
        best = best_match([f.box for f in fields], truth.box)
        if best is not None:
            pairs.append((truth, fields[best]))
            used.add(best)
        else:
            pairs.append((truth, None))
    spurious = [f for i, f in enumerate(fields) if i not in used]
    return pairs, spurious


@pytest.mark.parametrize("seed", [1, 2])
def test_clean_page_every_field_found_with_its_layout_and_kind(bank, seed):
    page = _page(bank, seed)
    pairs, spurious = _matches(page)
    assert {t.layout for t, _ in pairs} == {"comb", "underline", "box", "free", "printed"}
    for truth, found in pairs:
        assert found is not None, f"missed {truth}"
        assert found.layout == truth.layout
        assert found.kind == truth.kind
    # The title, the row labels and the logo are not digits.
    assert spurious == []


def test_comb_cells_give_one_digit_crop_each(bank):
    pairs, _ = _matches(_page(bank, 3))
    combs = [(t, f) for t, f in pairs if t.layout == "comb"]
    assert combs
    for truth, found in combs:
        assert len(found.digit_crops) == len(truth.text)
        assert len(found.digit_boxes) == len(truth.text)
        xs = [b.x for b in found.digit_boxes]
        assert xs == sorted(xs)
        for box in found.digit_boxes:  # every cell's digit lies inside the field
            assert box.x >= found.box.x - 1 and box.x + box.w <= found.box.x + found.box.w + 1


def test_crops_are_ready_for_the_models(bank):
    pairs, _ = _matches(_page(bank, 4))
    same_count = 0
    for truth, found in pairs:
        assert found.line_crop.dtype == np.float32 and found.line_crop.shape[0] == LINE_HEIGHT
        assert found.line_crop.min() >= 0.0 and found.line_crop.max() <= 1.0
        assert found.line_crop.max() > 0.5  # ink bright
        for crop in found.digit_crops:
            assert crop.shape == (28, 28) and crop.dtype == np.float32
            assert crop.max() > 0.5 and crop[0].max() < 0.5  # ink centred, margins dark
        same_count += len(found.digit_crops) == len(truth.text)
    assert same_count >= 0.8 * len(pairs)  # most free strings separate into their digits


@pytest.mark.parametrize(
    "degradation, dpi",
    [
        ("rotate", 200),
        ("faint", 150),
        ("grey", 150),
        ("shadow", 150),
        ("bilevel", 200),
        ("noise", 300),
        ("speckle", 150),
        ("jpeg", 150),
        ("blur", 400),
    ],
)
def test_degraded_scans_still_find_the_fields(bank, degradation, dpi):
    pairs, spurious = _matches(_page(bank, 20 + dpi, dpi=dpi, degradation=degradation))
    found = [f for _, f in pairs if f is not None]
    assert len(found) >= len(pairs) - 1, [t for t, f in pairs if f is None]
    assert len(spurious) <= 1


@pytest.mark.parametrize("angle", [-8.0, -2.5, 3.0, 9.5])
def test_skew_is_measured_within_half_a_degree(bank, angle):
    page = _page(bank, 5)
    h, w = page.image.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    tilted = cv2.warpAffine(page.image, matrix, (w, h), borderValue=255)
    clean = clean_page(tilted, page.dpi)
    assert clean.angle == pytest.approx(angle, abs=0.5)  # the rotation that levels it
    assert abs(estimate_skew(clean.binary)) < 0.3  # what is left after levelling


def test_boxes_come_back_in_the_coordinates_of_the_tilted_page(bank):
    page = _page(bank, 6, dpi=200, degradation="rotate")
    pairs, _ = _matches(page)  # truth boxes are in the rotated file's pixels
    assert sum(f is not None for _, f in pairs) >= len(pairs) - 1


def test_line_removal_keeps_strokes_that_cross_the_line():
    image = np.full((300, 900), 255, np.uint8)
    cv2.line(image, (50, 200), (850, 200), 0, 3)  # an underline
    cv2.line(image, (400, 120), (400, 240), 0, 7)  # a stroke crossing it
    clean = clean_page(image, 150)
    structure = find_structure(clean.ink, clean.binary, clean.px_per_inch)
    assert [f.layout for f in structure.frames] == ["underline"]
    assert structure.binary[200, 600] == 0 and structure.binary[200, 100] == 0  # line gone
    column = structure.binary[125:236, 400]
    assert column.min() == 255  # the stroke is whole, also where it crossed the line


def test_comb_and_box_structure_is_recognised():
    image = np.full((300, 900), 255, np.uint8)
    cv2.rectangle(image, (50, 40), (50 + 6 * 45, 100), 0, 2)
    for i in range(1, 6):
        cv2.line(image, (50 + 45 * i, 40), (50 + 45 * i, 100), 0, 2)
    cv2.rectangle(image, (400, 180), (850, 250), 0, 2)
    clean = clean_page(image, 150)
    frames = find_structure(clean.ink, clean.binary, clean.px_per_inch).frames
    layouts = sorted((f.layout, len(f.cells)) for f in frames)
    assert layouts == [("box", 0), ("comb", 6)]


@pytest.mark.parametrize("ink_on_white", [True, False])
def test_a_single_digit_image_is_one_field(bank, ink_on_white):
    digit = bank.images[bank.by_label[7][0]]
    big = cv2.resize(digit, (280, 280), interpolation=cv2.INTER_LINEAR)
    image = 255 - big if ink_on_white else big  # Paint drawing / MNIST style
    [field] = find_fields(Page(1, image, 0))
    assert field.layout == "single"
    assert len(field.digit_crops) == 1
    expected = normalize_digit(digit)
    assert np.corrcoef(field.digit_crops[0].ravel(), expected.ravel())[0, 1] > 0.9


def test_blank_and_noisy_pages_have_no_fields():
    rng = np.random.default_rng(0)
    blank = np.full((1754, 1240), 235, np.uint8)
    noisy = np.clip(blank + rng.normal(0, 12, blank.shape), 0, 255).astype(np.uint8)
    assert find_fields(Page(1, blank, 150)) == []
    assert find_fields(Page(1, noisy, 150)) == []


def test_a_photographed_digit_at_camera_dpi_is_read_as_one_drawing(bank):
    digit = cv2.resize(bank.images[bank.by_label[3][0]], (1500, 1500))
    photo = np.full((2400, 3200), 190, np.uint8)  # grey paper, uneven light, sensor noise
    photo[400:1900, 800:2300] = np.clip(190 - 0.7 * digit.astype(int), 0, 255).astype(np.uint8)
    light = np.linspace(-40, 40, photo.shape[1])[None, :]
    noise = np.random.default_rng(1).normal(0, 6, photo.shape)
    photo = np.clip(photo + light + noise, 0, 255).astype(np.uint8)
    [field] = find_fields(Page(1, photo, 72))
    assert field.layout == "single" and len(field.digit_crops) == 1
    x, y, w, h = field.box.as_list()
    assert 800 <= x + w / 2 <= 2300 and 400 <= y + h / 2 <= 1900


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (1, 5000), (5000, 9), (40, 40)])
@pytest.mark.parametrize("dpi", [0, 300])
def test_slivers_and_flat_images_give_no_fields(shape, dpi):
    for value in (0, 128, 255):
        assert find_fields(Page(1, np.full(shape, value, np.uint8), dpi)) == []


def test_two_numbers_on_one_line_stay_two_fields(bank):
    page = _page(bank, 8)
    free = next(t for t in page.fields if t.layout == "free")
    x, y, w, h = free.box
    image = page.image.copy()
    gap = int(0.6 * page.dpi)  # a clear space between two numbers, as between two entries
    right = x + w + gap
    image[y : y + h, right : right + w] = np.minimum(
        image[y : y + h, right : right + w], page.image[y : y + h, x : x + w]
    )
    fields = find_fields(Page(1, image, page.dpi))
    row = [f for f in fields if abs((f.box.y + f.box.h / 2) - (y + h / 2)) < h / 2]
    assert len(row) == 2
    assert all(
        iou(f.box.as_list(), [bx, y, w, h]) >= 0.5 for f, bx in zip(row, [x, right], strict=True)
    )


def test_a_thick_one_is_a_digit_not_a_blot():
    image = np.full((600, 900), 255, np.uint8)
    cv2.rectangle(image, (300, 250), (312, 300), 0, -1)  # a solid bar, 0.25 in tall at 200 dpi
    cv2.line(image, (340, 300), (372, 250), 0, 6)  # and a stroke beside it
    [field] = find_fields(Page(1, image, 200))
    assert len(field.digit_crops) == 2


def test_a_large_logo_is_neither_a_rule_nor_digits():
    image = np.full((600, 900), 255, np.uint8)
    cv2.circle(image, (450, 300), 90, 0, -1)  # 1.2 in across at 150 dpi
    cv2.rectangle(image, (405, 278), (495, 322), 255, -1)
    clean = clean_page(image, 150)
    assert find_structure(clean.ink, clean.binary, clean.px_per_inch).frames == []
    assert find_fields(Page(1, image, 150)) == []


def test_a_stroke_running_on_past_a_comb_does_not_stretch_its_grid():
    image = np.full((300, 900), 255, np.uint8)
    left, pitch, cells = 50, 45, 8
    right = left + cells * pitch
    cv2.rectangle(image, (left, 40), (right, 100), 0, 2)
    for i in range(1, cells):
        cv2.line(image, (left + pitch * i, 40), (left + pitch * i, 100), 0, 2)
    # The last digit's bar lies on the top rule and runs on past the comb's right side.
    cv2.line(image, (right - 20, 41), (right + 30, 41), 0, 3)
    cv2.line(image, (right + 30, 41), (right + 30, 85), 0, 3)
    clean = clean_page(image, 150)
    [comb] = find_structure(clean.ink, clean.binary, clean.px_per_inch).frames
    assert comb.layout == "comb" and len(comb.cells) == cells
    edges = [a for a, _ in comb.cells] + [comb.cells[-1][1]]
    assert all(abs(e - (left + pitch * i)) <= 3 for i, e in enumerate(edges)), edges


def test_comb_cells_never_share_a_blob(bank):
    page = render_page(bank, np.random.default_rng(3), dpi=400, degradation="clean")
    clean = clean_page(page.image, page.dpi)
    combs = [
        f
        for f in find_structure(clean.ink, clean.binary, clean.px_per_inch).frames
        if f.layout == "comb"
    ]
    assert combs
    for comb in combs:
        # A blob centred exactly on the column two neighbouring cells share.
        _, shared = comb.cells[0]
        blob = vision_fields.Blob(1, shared - 5, comb.y + 5, 10, comb.h - 10, 80)
        units = vision_fields._comb_units([blob], comb)
        assert units == [[blob]]


def test_connected_components_of_an_odd_sized_image_keep_its_shape():
    binary = np.zeros((177, 125), np.uint8)
    binary[10:20, 10:20] = 255
    binary[176, 124] = 255  # ink on the last row and column
    count, labels, stats = components(binary)
    assert labels.shape == binary.shape
    assert count == 3
    assert labels[176, 124] != 0 and labels[15, 15] != labels[176, 124]
    assert sorted(stats[1:, 4].tolist()) == [1, 100]
