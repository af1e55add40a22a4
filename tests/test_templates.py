"""Form templates: the file format and its errors, rules, creating a template from a page,
matching scans to the right template (or none) and naming the readings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ocrd.templates import TemplateError, TemplateSet, load_template, load_templates, save_template
from ocrd.templates.create import create_template
from ocrd.templates.model import dump_template
from ocrd.templates.rules import Rules, broken_rules, luhn_ok, mod11_ok, mod97_ok
from ocrd.types import Box, Page
from training.forms import FORM_FAMILIES, DigitBank, render_form, render_page, warp_scan

DPI = 200


@pytest.fixture(scope="module")
def bank() -> DigitBank:
    return DigitBank.holdout()


@pytest.fixture(scope="module")
def templates(bank: DigitBank) -> dict:
    """One template per form family, made from a clean filled copy; fields renamed after the
    form as a user would."""
    rng = np.random.default_rng(5)
    made = {}
    for name, form in FORM_FAMILIES.items():
        reference = render_form(form, bank, rng, dpi=DPI)
        template = create_template(name, Page(1, reference.image, DPI))
        fields = []
        for tfield in template.fields:
            spec = next(
                s for s, t in zip(form.fields, reference.fields, strict=True)
                if _inside(t.box, tfield.box)
            )  # fmt: skip
            fields.append(replace(tfield, name=spec.name))
        made[name] = replace(template, fields=tuple(fields))
    return made


def _inside(truth: list[int], box: Box) -> bool:
    cx, cy = truth[0] + truth[2] / 2, truth[1] + truth[3] / 2
    return box.x <= cx <= box.x + box.w and box.y <= cy <= box.y + box.h


# -- rules ------------------------------------------------------------------------------------


def test_checksums_accept_valid_numbers_and_reject_one_wrong_digit() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert mod11_ok("0306406152") and not mod11_ok("0306406153")  # ISBN-10 weights
    assert mod97_ok("195") and not mod97_ok("196")  # 195 = 2 * 97 + 1


def test_broken_rules_give_one_reason_each() -> None:
    rules = Rules(required=True, length=4, pattern=r"1\d+", max=2000, checksum="luhn")
    assert broken_rules("", rules) == ["required field is empty"]
    assert broken_rules("", Rules(length=4)) == []  # only `required` applies to an empty field
    reasons = broken_rules("9876", rules)
    assert reasons == [
        "does not match pattern 1\\d+",
        "9876 is above the maximum 2000",
        "luhn checksum fails",
    ]
    assert broken_rules("123", Rules(min_length=4)) == ["length 3, expected at least 4"]
    assert broken_rules("1234", Rules(min=1, max=5000, length=4)) == []


# -- the file ---------------------------------------------------------------------------------


def test_template_file_round_trips_and_lists_fields_in_order(templates, tmp_path: Path) -> None:
    template = templates["claim"]
    ruled = replace(template.fields[0], rules=Rules(required=True, length=7, checksum="mod11"))
    template = replace(template, fields=(ruled, *template.fields[1:]))
    path = tmp_path / "claim.toml"
    save_template(template, path)
    loaded = load_template(path)
    assert loaded.field_names() == [spec.name for spec in FORM_FAMILIES["claim"].fields]
    assert loaded.fields[0].rules == ruled.rules
    assert loaded.fields[0].cells == 7 and loaded.fields[0].layout == "comb"
    assert np.array_equal(loaded.fingerprint.descriptors, template.fingerprint.descriptors)
    text = path.read_text()
    assert text.index("[[fields]]") < text.index("[fingerprint]")  # names first, for editing


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('layout = "comb"', 'layout = "zigzag"', "fields[0].layout"),
        ('name = "policy_number"', 'name = "amount"', "fields[1].name"),
        ('kind = "handwritten"', 'kind = "handwritten"\nlenght = 7', "fields[0].lenght"),
        ('kind = "handwritten"', 'kind = "handwritten"\nchecksum = "crc"', "fields[0].checksum"),
        ('kind = "handwritten"', 'kind = "handwritten"\npattern = "(["', "fields[0].pattern"),
        ('kind = "handwritten"', 'kind = "handwritten"\nlength = "7"', "fields[0].length"),
        ("width = ", "width = -", "width"),
        ("label = [", "label = [-5, ", "fields[0].label"),
    ],
)
def test_a_mistake_in_the_file_is_refused_naming_file_and_key(
    templates, tmp_path: Path, old: str, new: str, key: str
) -> None:
    good = dump_template(templates["claim"])
    assert old in good
    # 'amount' twice: rename the first field to the second's name
    text = good.replace(old, new, 1)
    if "policy_number" in old:
        text = good.replace('name = "amount"', 'name = "policy_number"', 1)
    path = tmp_path / "claim.toml"
    path.write_text(text)
    with pytest.raises(TemplateError) as error:
        load_template(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    expected = "fields[1].name" if "policy_number" in old else key
    assert f": {expected}: " in message, message


def test_broken_toml_and_clashing_names_are_refused(templates, tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("name = [unclosed\n")
    with pytest.raises(TemplateError, match=r"a\.toml: not valid TOML"):
        load_templates(tmp_path)
    save_template(templates["order"], tmp_path / "a.toml")
    save_template(templates["order"], tmp_path / "b.toml")  # both named "order" inside
    with pytest.raises(TemplateError, match=r"b\.toml: name: 'order' is also used by"):
        load_templates(tmp_path)
    assert not load_templates(tmp_path / "missing")  # no folder: no templates


# -- creating ---------------------------------------------------------------------------------


def test_create_from_a_blank_form_finds_every_ruled_field(bank) -> None:
    form = FORM_FAMILIES["claim"]
    blank = render_form(form, None, np.random.default_rng(1), dpi=DPI)
    template = create_template("claim", Page(1, blank.image, DPI))
    ruled = [s for s in form.fields if s.layout in ("comb", "box", "underline")]
    assert [f.layout for f in template.fields] == [s.layout for s in ruled]
    assert [f.name for f in template.fields] == [f"field_{i + 1}" for i in range(len(ruled))]
    assert [f.cells for f in template.fields if f.layout == "comb"] == [
        int(s.size) for s in ruled if s.layout == "comb"
    ]
    for tfield, truth in zip(template.fields, [t for t, s in zip(blank.fields, form.fields,
                                                                  strict=True) if s in ruled],
                             strict=True):  # fmt: skip
        assert _inside(truth.box, tfield.box)


@pytest.mark.parametrize(("family", "side"), [("claim", "left"), ("order", "above"),
                                              ("registration", "right")])  # fmt: skip
def test_create_writes_each_fields_printed_label_box(family: str, side: str, tmp_path) -> None:
    """Labels are words and ocrd reads digits: the names stay field_N in reading order, and
    each field carries its label's box (left of it, else above, else right) for the user."""
    blank = render_form(FORM_FAMILIES[family], None, np.random.default_rng(1), dpi=DPI)
    template = create_template(family, Page(1, blank.image, DPI))
    rows = [(f.box.y, f.box.x) for f in template.fields]
    assert rows == sorted(rows, key=lambda r: (r[0] // (DPI // 6), r[1]))  # reading order
    labels = [f.label for f in template.fields]
    assert all(label is not None for label in labels)
    assert len({(label.x, label.y) for label in labels}) == len(labels)  # one each
    for f, label in zip(template.fields, labels, strict=True):
        row = label.y <= f.box.y + f.box.h / 2 <= label.y + label.h + 0.3 * DPI
        if side == "left":
            assert label.x + label.w <= f.box.x and row, (f.name, label)
        elif side == "above":
            assert label.y + label.h <= f.box.y and abs(label.x - f.box.x) < 0.2 * DPI
        else:
            assert label.x >= f.box.x + f.box.w and row, (f.name, label)
        assert 0.05 * DPI < label.h < 0.25 * DPI  # one line of 8-14 pt print
    save_template(template, tmp_path / "t.toml")
    assert [f.label for f in load_template(tmp_path / "t.toml").fields] == labels


# -- matching ---------------------------------------------------------------------------------


def test_scans_match_their_own_template_and_map_fields_onto_it(bank, templates) -> None:
    rng = np.random.default_rng(7)
    template_set = TemplateSet(list(templates.values()))
    for name, form in FORM_FAMILIES.items():
        for dpi in (150, 300):
            original = render_form(form, bank, rng, dpi=dpi)
            scan = warp_scan(original, rng)
            match = template_set.match(Page(1, scan.image, dpi))
            assert match is not None and match.template.name == name, (name, dpi)
            # the centre of every field on the scan lands inside that field on the template
            by_name = {f.name: f for f in match.template.fields}
            for spec, truth in zip(form.fields, scan.fields, strict=True):
                x, y, w, h = truth.box
                ((cx, cy),) = match.to_template(np.array([[x + w / 2, y + h / 2]]))
                box = by_name[spec.name].box
                slack = 0.08 * DPI
                assert box.x - slack <= cx <= box.x + box.w + slack, (name, spec.name)
                assert box.y - slack <= cy <= box.y + box.h + slack, (name, spec.name)


def test_a_scan_s_own_template_is_tried_first_whatever_the_file_order(bank, templates) -> None:
    """The cheap ranking puts the page's own template first, so the full match stops there."""
    from ocrd.templates import align

    rng = np.random.default_rng(9)
    for ordered in (list(templates.values()), list(templates.values())[::-1]):
        matcher = align.Matcher(ordered)
        for name, form in FORM_FAMILIES.items():
            scan = warp_scan(render_form(form, bank, rng, dpi=200), rng)
            small, _scale = align.reduce(scan.image)
            points, descriptors = align._detect(small, align.PAGE_FEATURES)
            tried = matcher._candidates(points, descriptors, small.shape)
            assert [t.name for t in tried][0] == name
            assert sorted(t.name for t in tried) == sorted(templates)  # none left out


def test_forms_without_a_template_match_none(bank, templates) -> None:
    """Other forms share the titles, fonts, logo and label column of the templates' forms."""
    rng = np.random.default_rng(8)
    template_set = TemplateSet(list(templates.values()))
    for _ in range(6):
        page = render_page(bank, rng, dpi=200)
        assert template_set.match(Page(1, page.image, 200)) is None
    only_claim = TemplateSet([templates["claim"]])
    order = warp_scan(render_form(FORM_FAMILIES["order"], bank, rng, dpi=200), rng)
    assert only_claim.match(Page(1, order.image, 200)) is None


def test_templates_dir_setting_resolves_like_the_other_folders(tmp_path: Path, monkeypatch) -> None:
    from ocrd.config import load_settings

    monkeypatch.chdir(tmp_path)
    assert load_settings().templates_dir == tmp_path / "templates"
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "ocrd.toml").write_text('templates_dir = "forms"\n')
    settings = load_settings(config_file=etc / "ocrd.toml")
    assert (
        settings.templates_dir == etc / "forms" and settings.sources["templates_dir"] != "default"
    )
    monkeypatch.setenv("OCRD_TEMPLATES_DIR", "elsewhere")
    assert load_settings(config_file=etc / "ocrd.toml").templates_dir == tmp_path / "elsewhere"
