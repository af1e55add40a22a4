"""The synchronous pipeline: generated files in every format through `extract_fields`, the
fusion policy, and `read_document` with the shipped models (skipped until they ship)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ocrd.pipeline import DISAGREEMENT_PENALTY, extract_fields, fuse, read_document
from ocrd.recognition import DigitPrediction, LinePrediction
from ocrd.types import BadInputError, Box, Field
from training.forms import MATCH_IOU, generate, iou


@pytest.fixture(autouse=True)
def raw_confidences(monkeypatch):
    """The fusion rules are about raw confidences: calibration (tests/test_real_reading.py)
    is left out here."""
    from ocrd import pipeline
    from ocrd.calibration import Calibration

    monkeypatch.setattr(pipeline, "shipped_calibration", lambda: Calibration(accept_confidence=0))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two clean 150-dpi pages per format (TIFF and PDF: one two-page file), plus a bilevel
    Group 4 TIFF, written by the generator with their truth JSON."""
    root = tmp_path_factory.mktemp("forms")
    files = {}
    for fmt in ("png", "jpeg", "tiff", "pdf"):
        files[fmt] = generate(
            root / fmt,
            pages=2,
            seed=3,
            split="t10k",
            fmt=fmt,
            pages_per_file=2,
            dpi=150,
            degradations=("clean",),
        )
    files["fax"] = generate(
        root / "fax", pages=1, seed=4, split="t10k", fmt="tiff", dpi=200, degradations=("bilevel",)
    )
    return files


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff", "pdf", "fax"])
def test_every_format_yields_the_truth_fields(generated, fmt):
    pages_seen = 0
    for path in generated[fmt]:
        truth = json.loads(path.with_suffix(".json").read_text())
        for (page, fields), page_truth in zip(extract_fields(path), truth["pages"], strict=True):
            pages_seen += 1
            assert page.number == page_truth["page"]
            height, width = page.image.shape  # PDF rendering may round up by a pixel
            assert abs(height - page_truth["height"]) <= 1 and abs(width - page_truth["width"]) <= 1
            boxes = [f.box.as_list() for f in fields]
            for field in page_truth["fields"]:
                best = max((iou(b, field["box"]) for b in boxes), default=0.0)
                assert best >= MATCH_IOU, f"{path.name} page {page.number}: missed {field}"
    assert pages_seen == (1 if fmt == "fax" else 2)


def test_tiff_and_pdf_hold_both_pages_in_one_file(generated):
    assert len(generated["tiff"]) == 1 and len(generated["pdf"]) == 1
    assert len(generated["png"]) == 2


def test_bad_files_raise_before_any_model_loads(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(BadInputError):
        read_document(path, recognizer=None)


# -- fusion policy ----------------------------------------------------------------------------


def _field(layout: str, digits: int) -> Field:
    boxes = [Box(100 + 30 * i, 50, 25, 40) for i in range(digits)]
    return Field(
        page=1,
        box=Box(100, 50, 30 * digits, 40),
        kind="handwritten",
        layout=layout,
        line_crop=np.zeros((32, 20 * max(1, digits) + 4), np.float32),
        digit_crops=[np.zeros((28, 28), np.float32)] * digits,
        digit_boxes=boxes,
    )


def _digit(label: int, confidence: float = 0.99, is_digit: bool = True) -> DigitPrediction:
    return DigitPrediction(label, confidence, (label + 1) % 10, 1 - confidence, is_digit)


def _line(text: str, confidence: float) -> LinePrediction:
    positions = [2 + 20 * i + 10 for i in range(len(text))]
    return LinePrediction(text, [confidence] * len(text), positions, confidence)


def test_comb_trusts_the_digit_classifier_and_agreement_raises_confidence():
    field = _field("comb", 3)
    digits = [_digit(4, 0.9), _digit(2, 0.95), _digit(7, 0.97)]
    alone = fuse(field, None, digits, "m@1")
    agreed = fuse(field, _line("427", 0.8), digits, "m@1")
    assert alone.text == agreed.text == "427"
    string = 0.9 * 0.95 * 0.97  # a string is right when every digit is
    assert alone.confidence == pytest.approx(string)
    assert agreed.confidence == pytest.approx(1 - (1 - string) * 0.2)
    assert [d.digit for d in agreed.digits] == ["4", "2", "7"]
    assert agreed.digits[1].box == field.digit_boxes[1]
    assert agreed.digits[1].runner_up == "3"
    assert agreed.model == "m@1" and agreed.box == field.box


def test_comb_disagreement_lowers_confidence_but_keeps_the_cells():
    reading = fuse(_field("comb", 2), _line("71", 0.9), [_digit(1), _digit(1)], "m@1")
    assert reading.text == "11"  # even though the sequence model is surer
    assert reading.confidence == pytest.approx(0.99 * 0.99 * DISAGREEMENT_PENALTY)


def test_equal_counts_take_the_surer_reader_at_each_position():
    field = _field("comb", 4)  # cell 3 holds a neighbour's spill: the classifier is unsure
    digits = [_digit(5, 0.99), _digit(8, 0.97), _digit(4, 0.41), _digit(1, 0.98)]
    reading = fuse(field, LinePrediction("5871", [0.9, 0.6, 0.88, 0.95], [8, 28, 48, 68], 0.45),
                   digits, "m@1")  # fmt: skip
    assert reading.text == "5871"  # 8 from the classifier, 7 from the sequence model
    assert reading.confidence == pytest.approx(0.99 * 0.97 * 0.88 * 0.98 * DISAGREEMENT_PENALTY)
    third = reading.digits[2]
    assert (third.digit, third.runner_up) == ("7", "4")
    assert third.runner_up_confidence == pytest.approx(0.41)
    assert [d.box for d in reading.digits] == field.digit_boxes


def test_a_rejected_blob_the_sequence_model_counts_is_a_digit_after_all():
    field = _field("free", 3)  # a faint 5 the classifier rejected; the sequence model reads it
    digits = [_digit(6), _digit(5), _digit(3, 0.28, is_digit=False)]
    reading = fuse(field, LinePrediction("655", [0.99, 0.98, 0.97], [8, 28, 48], 0.94),
                   digits, "m@1")  # fmt: skip
    assert reading.text == "655"
    assert reading.digits[2].box == field.digit_boxes[2]
    assert reading.confidence == pytest.approx(0.99 * 0.99 * 0.97 * DISAGREEMENT_PENALTY)
    # A separator the sequence model does not count stays out ("12-5" -> "125").
    dash = [_digit(1), _digit(2), _digit(1, 0.3, is_digit=False), _digit(5)]
    assert fuse(_field("free", 4), _line("125", 0.9), dash, "m@1").text == "125"


def test_touching_digits_in_a_string_go_to_the_surer_sequence_model():
    field = _field("free", 3)  # two of three digits touch: two blobs, the classifier unsure
    reading = fuse(field, _line("123", 0.92), [_digit(1), _digit(7, 0.6)], "m@1")
    assert reading.text == "123"
    assert reading.confidence == pytest.approx(0.92 * DISAGREEMENT_PENALTY)
    assert len(reading.digits) == 3
    # positions map back inside the field, left to right
    xs = [d.box.x for d in reading.digits]
    assert xs == sorted(xs) and field.box.x <= xs[0] and xs[-1] < field.box.x + field.box.w


def test_unsure_sequence_yields_to_sure_digits():
    field = _field("underline", 2)
    reading = fuse(field, _line("8", 0.3), [_digit(3, 0.99), _digit(8, 0.98)], "m@1")
    assert reading.text == "38"
    assert reading.confidence == pytest.approx(0.99 * 0.98 * DISAGREEMENT_PENALTY)
    assert [d.runner_up for d in reading.digits] == ["4", "9"]  # per-digit details kept


def test_field_with_every_digit_rejected_is_not_digits():
    field = _field("printed", 3)
    rejected = [_digit(1, 0.3, is_digit=False)] * 3
    assert fuse(field, _line("111", 0.4), rejected, "m@1") is None
    assert fuse(_field("free", 0), _line("", 0.0), [], "m@1") is None


# -- with the shipped models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def recognizer():
    from ocrd.recognition import load_recognizer

    try:
        return load_recognizer()
    except Exception as exc:  # weights not shipped in this checkout yet
        pytest.skip(f"shipped models not loadable: {exc}")


def test_read_document_reads_generated_forms(generated, recognizer):
    path = generated["tiff"][0]
    truth = json.loads(path.with_suffix(".json").read_text())
    document = read_document(path, recognizer)
    assert document.media_type == "image/tiff" and document.pages == 2
    expected = [(p["page"], f) for p in truth["pages"] for f in p["fields"]]
    exact = 0
    for page, field in expected:
        candidates = [r for r in document.fields if r.page == page]
        best = max(candidates, key=lambda r: iou(r.box.as_list(), field["box"]))
        exact += best.text == field["text"]
        assert 0.0 <= best.confidence <= 1.0
        assert best.model == recognizer.model_name
    assert exact >= 0.7 * len(expected)


def test_a_rejected_blob_in_a_written_string_is_left_out():
    field = _field("free", 4)  # "12-5": the dash is not a digit
    digits = [_digit(1), _digit(2), _digit(1, 0.3, is_digit=False), _digit(5)]
    reading = fuse(field, None, digits, "m@1")
    assert reading.text == "125"
    assert [d.box for d in reading.digits] == [field.digit_boxes[i] for i in (0, 1, 3)]
    comb = fuse(_field("comb", 4), None, digits, "m@1")
    assert comb.text == "1215" and comb.confidence == pytest.approx(0.99**3 * 0.3)


def test_a_left_out_blob_that_may_be_a_digit_lowers_the_confidence():
    # "30923" with the last digit broken: the classifier rejected it at 0.3, so "3092" is
    # right only if that blob is no digit (0.7), however sure the other four are.
    field = _field("free", 5)
    digits = [_digit(3), _digit(0), _digit(9), _digit(2), _digit(3, 0.3, is_digit=False)]
    reading = fuse(field, None, digits, "m@1")
    assert reading.text == "3092"
    assert reading.confidence == pytest.approx(0.99**4 * 0.7)
    mark = [_digit(3), _digit(0), _digit(9), _digit(2), _digit(1, 0.02, is_digit=False)]
    assert fuse(field, None, mark, "m@1").confidence == pytest.approx(0.99**4 * 0.98)


def test_a_line_model_that_read_nothing_does_not_back_the_classifier():
    field = _field("underline", 3)
    digits = [_digit(9), _digit(5), _digit(1)]
    alone = fuse(field, None, digits, "m@1")
    blank = fuse(field, _line("", 0.5), digits, "m@1")
    assert alone.text == blank.text == "951"
    assert blank.confidence == pytest.approx(alone.confidence * DISAGREEMENT_PENALTY)


def test_clean_blobs_outvote_a_sequence_that_lost_a_repeated_digit():
    field = _field("box", 4)
    digits = [_digit(6, 0.85), _digit(1, 0.9), _digit(1, 0.9), _digit(1, 0.9)]
    reading = fuse(field, _line("611", 0.97), digits, "m@1")
    assert reading.text == "6111"
    unsure = [_digit(6, 0.85), _digit(1, 0.5), _digit(1, 0.9), _digit(1, 0.9)]
    assert fuse(field, _line("611", 0.97), unsure, "m@1").text == "611"


def test_form_crops_for_training_carry_the_digit_they_show(recognizer):
    from training.forms import DigitBank, form_digit_crops

    crops, labels = form_digit_crops(DigitBank.load("t10k"), np.random.default_rng(7), pages=2)
    assert crops.shape == (len(labels), 28, 28) and len(labels) >= 40
    assert set(labels.tolist()) <= set(range(10))
    predicted, _ = recognizer.recognize_digits(crops)
    # Labelled one-to-one with the truth: the shipped classifier agrees on nearly all.
    assert float(np.mean(predicted == labels)) >= 0.9
