"""Every template field gets a result: one vision missed is read from its aligned region
(real rendered scans, real vision, real weights); one with nothing written is an empty result;
pieces of a field's frame read as digits are taken out (by their place on the rules, and by
the evidence test: no writing left there once the field's own rules are erased)."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import replace

import cv2
import numpy as np
import pytest

from ocrd.pipeline import read_fields
from ocrd.recognition import load_recognizer
from ocrd.templates import TemplateSet, match_page, name_pages
from ocrd.templates.align import PageMatch
from ocrd.templates.create import create_template
from ocrd.templates.evidence import writing_boxes
from ocrd.templates.model import Fingerprint, Template, TemplateField
from ocrd.templates.regions import read_region
from ocrd.templates.remnants import without_frame_remnants
from ocrd.types import Box, DigitReading, FieldReading, Page
from ocrd.vision import find_fields
from training.forms import FORM_FAMILIES, DigitBank, degrade, iou, render_form, warp_scan

DPI = 200
FORM = FORM_FAMILIES["claim"]


@pytest.fixture(scope="module")
def template():  # noqa: ANN201 (ocrd.templates.Template)
    """The claim template from a blank form, fields named after the form."""
    blank = render_form(FORM, None, np.random.default_rng(0), dpi=DPI)
    made = create_template("claim", Page(1, blank.image, DPI))
    names = []
    for tfield in made.fields:
        spec = next(
            s for s, t in zip(FORM.fields, blank.fields, strict=True)
            if tfield.box.x <= t.box[0] + t.box[2] / 2 <= tfield.box.x + tfield.box.w
            and tfield.box.y <= t.box[1] + t.box[3] / 2 <= tfield.box.y + tfield.box.h
        )  # fmt: skip
        names.append(spec.name)
    named = [replace(f, name=n) for f, n in zip(made.fields, names, strict=True)]
    return replace(made, fields=tuple(named))


@pytest.fixture(scope="module")
def scan():  # noqa: ANN201 (training.forms page: image + truth fields)
    rng = np.random.default_rng(21)
    return warp_scan(render_form(FORM, DigitBank.holdout(), rng, dpi=DPI, blank_rate=0.0), rng)


def _truth(scan, name: str):  # noqa: ANN001, ANN202
    return next(t for s, t in zip(FORM.fields, scan.fields, strict=True) if s.name == name)


def test_a_field_vision_missed_is_read_from_its_aligned_region(template, scan) -> None:
    page = Page(1, scan.image, DPI)
    found = find_fields(page)
    truth = _truth(scan, "policy_number")  # a comb
    missed = [f for f in found if iou(f.box.as_list(), truth.box) < 0.3]
    assert len(missed) < len(found)  # vision did find it: drop it, as if it had not
    (match, shape), fields = match_page(page, missed, TemplateSet([template]))
    assert match is not None and match.template.name == "claim"
    extra = fields[len(missed) :]
    assert len(extra) == 1 and iou(extra[0].box.as_list(), truth.box) > 0.5
    assert len(extra[0].digit_crops) == len(truth.text)  # one crop per comb cell written
    readings = [r for r in read_fields(fields, load_recognizer()) if r is not None]
    named = {r.field_name: r for r in name_pages(readings, {1: (match, shape)})}
    assert len(named["policy_number"].text) == len(truth.text)
    assert set(named) >= {f.name for f in template.fields}  # a result for every field


def test_an_empty_field_gives_no_crop_and_an_empty_result(template) -> None:
    rng = np.random.default_rng(22)
    blank = warp_scan(render_form(FORM, None, rng, dpi=DPI), rng)
    page = Page(1, blank.image, DPI)
    found = find_fields(page)  # (on a blank scan vision may take frame remnants for fields)
    (match, shape), fields = match_page(page, found, TemplateSet([template]))
    assert match is not None and fields == found  # no region holds ink: none is added
    named = name_pages([], {1: (match, shape)})  # nothing read on the page
    assert [r.field_name for r in named] == [f.name for f in template.fields]
    assert all(r.text == "" and r.template == "claim" for r in named)


def test_ink_vision_does_not_take_for_a_number_is_still_read(template, scan) -> None:
    """A lone short stroke above the branch code's underline (vision drops it as a mark)."""
    rng = np.random.default_rng(23)
    blank = warp_scan(render_form(FORM, None, rng, dpi=DPI), rng)
    image = blank.image.copy()
    x, y, w, h = _truth(blank, "branch_code").box
    top, bottom = y + h // 2 - int(0.05 * DPI), y + h // 2 + int(0.05 * DPI)
    cv2.line(image, (x + w // 3, top), (x + w // 3, bottom), 0, 3)
    page = Page(1, image, DPI)
    match = TemplateSet([template]).match(page)
    underline = next(f for f in template.fields if f.name == "branch_code")
    assert not [f for f in find_fields(page) if iou(f.box.as_list(), [x, y, w, h]) > 0]
    (field,) = read_region(page, match, underline)
    assert field.layout in ("single", "field")  # read as one written number, not found by vision
    cx, cy = field.box.x + field.box.w / 2, field.box.y + field.box.h / 2
    assert x <= cx <= x + w and y <= cy <= y + h


def test_frame_pieces_read_as_ones_are_taken_out_of_a_comb() -> None:
    """Thin digits centred on a comb's divider or side are its frame; a 1 in a cell is not."""
    comb = TemplateField("code", Box(100, 100, 400, 100), "comb", cells=4)  # rules every 100 px
    rng = np.random.default_rng(0)
    fingerprint = Fingerprint(100, 100, np.zeros((20, 2), np.float32),
                              rng.integers(0, 256, (20, 32), dtype=np.uint8))  # fmt: skip
    template = Template("t", 800, 800, 100, (comb,), fingerprint)
    match = PageMatch(template, np.eye(3), inliers=50)

    def read(*digits: tuple[str, int, int]) -> FieldReading:
        marks = [DigitReading(d, 0.9, Box(x, 110, w, 80)) for d, x, w in digits]
        return FieldReading(1, Box(100, 100, 400, 100), "".join(d for d, _, _ in digits), 0.8,
                            "handwritten", "m@1", digits=marks)  # fmt: skip

    # a divider at 200, a written 5, a written thin 1 mid-cell at 341, the right side at 500
    got = without_frame_remnants(read(("1", 199, 3), ("5", 230, 40), ("1", 340, 3),
                                      ("1", 498, 3)), comb, match, dpi=100)  # fmt: skip
    assert got is not None and got.text == "51" and [d.box.x for d in got.digits] == [230, 340]
    assert without_frame_remnants(read(("1", 199, 3), ("1", 299, 2)), comb, match, 100) is None
    wide = read(("1", 190, 20))  # as wide as a written 1: kept even on the divider
    assert without_frame_remnants(wide, comb, match, 100).text == "1"


def test_a_field_with_nothing_written_is_empty_even_where_its_frame_reads_as_ones(
    template,
) -> None:
    """A blurred 200-dpi scan, half the fields left empty: vision keeps pieces of an empty
    comb's dividers and of a box's right side, the models read them as 1s; the template's
    evidence test (ink left once the field's own rules are erased) takes them out."""
    rng = np.random.default_rng(2)
    scan = warp_scan(render_form(FORM, DigitBank.holdout(), rng, dpi=DPI, blank_rate=0.5), rng)
    scan.degradation = "blur"
    scan = degrade(scan, rng)
    page = Page(1, scan.image, DPI)
    (match, shape), fields = match_page(page, find_fields(page), TemplateSet([template]))
    assert match is not None and match.writing is not None
    readings = [r for r in read_fields(fields, load_recognizer()) if r is not None]
    unchecked = replace(match, writing=None)  # as naming was before the evidence test
    before = {r.field_name: r.text for r in name_pages(deepcopy(readings), {1: (unchecked, shape)})}
    after = {r.field_name: r.text for r in name_pages(readings, {1: (match, shape)})}
    truth = {s.name: t for s, t in zip(FORM.fields, scan.fields, strict=True)}
    empty = [n for n in after if n and truth[n].kind == "handwritten" and not truth[n].text]
    assert empty and any(before[n] for n in empty)  # frame pieces were read as digits here
    assert all(after[n] == "" for n in empty)
    written = [n for n in after if n and truth[n].kind == "handwritten" and truth[n].text]
    assert sum(after[n] == truth[n].text for n in written) > sum(
        before[n] == truth[n].text for n in written
    )  # a box's side read as a trailing 1 is gone too
    assert all(len(after[n]) <= len(before[n]) for n in written)  # digits only taken out


def test_the_evidence_of_a_comb_is_its_written_digits_not_its_dividers(template, scan) -> None:
    match = TemplateSet([template]).match(Page(1, scan.image, DPI))
    comb = next(f for f in template.fields if f.name == "policy_number")
    writing = writing_boxes(scan.image, match.homography, comb, template.dpi)
    assert len(writing) == len(_truth(scan, "policy_number").text)  # one per written cell
    rng = np.random.default_rng(24)
    blank = warp_scan(render_form(FORM, None, rng, dpi=DPI), rng)
    match = TemplateSet([template]).match(Page(1, blank.image, DPI))
    assert writing_boxes(blank.image, match.homography, comb, template.dpi) == ()
