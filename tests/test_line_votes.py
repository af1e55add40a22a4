"""Whole-field images are read with variants that vote (ocrd/line_votes.py), and training
strings can be put on paper and taken off again (training/paper.py)."""

import numpy as np
import pytest

from ocrd.line_votes import VARIANT_COUNT, combined, line_inputs, line_variants, vote
from ocrd.normalize import LINE_HEIGHT, normalize_line
from ocrd.recognition import LinePrediction, load_recognizer
from ocrd.types import Box, Field


def _prediction(text: str, confidence: float) -> LinePrediction:
    return LinePrediction(text, [confidence] * len(text), [4.0 * i for i in range(len(text))],
                          confidence)  # fmt: skip


def _stroke_line() -> np.ndarray:
    ink = np.zeros((40, 90), np.uint8)
    ink[5:35, 10:14] = 255
    ink[5:35, 50:54] = 255
    return normalize_line(ink)


def test_variants_are_lines_the_model_takes():
    variants = line_variants(_stroke_line())
    assert len(variants) == VARIANT_COUNT
    assert all(v.shape[0] == LINE_HEIGHT and v.dtype == np.float32 for v in variants)
    widths = {v.shape[1] for v in variants}
    assert len(widths) > 2  # stretched and sheared variants differ in width
    assert variants[0] is not None and np.array_equal(variants[0], _stroke_line())


def test_the_summed_confidence_wins_and_disagreement_costs():
    readings = [_prediction("17", 0.6), _prediction("77", 0.9), _prediction("17", 0.7),
                _prediction("17", 0.5)]  # fmt: skip
    result = vote(readings, [100, 80, 100, 100])
    assert result.text == "17"
    assert result.confidence == pytest.approx((0.6 + 0.7 + 0.5) / 4)
    assert vote([_prediction("5", 0.9)] * 3, [50] * 3).confidence == pytest.approx(0.9)


def test_positions_of_a_stretched_winner_are_scaled_to_the_line():
    readings = [_prediction("1", 0.2), _prediction("42", 0.9)]
    result = vote(readings, [100, 200])
    assert result.text == "42" and result.positions == [0.0, 2.0]


def test_only_whole_field_images_get_variants():
    line = _stroke_line()
    box = Box(0, 0, 90, 40)
    field_image = Field(page=1, box=box, kind="handwritten", layout="field", line_crop=line)
    form_field = Field(page=1, box=box, kind="handwritten", layout="underline", line_crop=line)
    assert len(line_inputs(field_image)) == VARIANT_COUNT
    assert len(line_inputs(form_field)) == 1
    only = _prediction("3", 0.4)
    assert combined([only], [line]) is only


def test_the_shipped_line_model_reads_each_variant_of_a_real_amount(orand_holdout):
    import cv2

    from ocrd.normalize import ink_from_paper

    sample = orand_holdout[0]
    line = normalize_line(ink_from_paper(cv2.imread(str(sample.path), cv2.IMREAD_GRAYSCALE)))
    readings = load_recognizer().read_lines(line_variants(line))
    voted = vote(readings, [v.shape[1] for v in line_variants(line)])
    assert voted.text in {r.text for r in readings}
    assert 0.0 < voted.confidence <= max(r.confidence for r in readings)


def test_a_string_on_paper_comes_back_as_ink_on_black():
    from training.paper import on_paper

    ink = np.zeros((40, 120), np.uint8)
    ink[8:32, 20:26] = 255
    rng = np.random.default_rng(0)
    back = on_paper(ink, rng)
    assert back.dtype == np.uint8 and back.shape[0] > ink.shape[0]
    # The stroke is the brightest thing on the page again, the paper mostly dark.
    assert np.median(back) < 40 and back.max() == 255
