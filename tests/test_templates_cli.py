"""`ocrd template create|list|show|check`, processing with templates and the wide export,
on real files, real weights and a real SQLite database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ocrd.cli import app
from training.forms import FORM_FAMILIES, DigitBank, render_form, render_page, warp_scan

DPI = 200
RULED = [s for s in FORM_FAMILIES["claim"].fields if s.layout in ("comb", "box", "underline")]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("OCRD_TEMPLATES_DIR", str(tmp_path / "templates"))
    monkeypatch.setenv("OCRD_DATABASE_URL", f"sqlite:///{tmp_path / 'ocrd.db'}")
    return CliRunner()


def write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def make_claim_template(runner: CliRunner, tmp_path: Path) -> Path:
    """Create from a blank form, then rename the fields as the walk-through says."""
    blank = render_form(FORM_FAMILIES["claim"], None, np.random.default_rng(0), dpi=DPI)
    blank_file = write(tmp_path / "blank.png", blank.image)
    result = runner.invoke(app, ["template", "create", "claim", str(blank_file)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "templates" / "claim.toml"
    assert f"{len(RULED)} fields" in result.output
    text = path.read_text()
    for index, spec in enumerate(RULED, start=1):
        text = text.replace(f'name = "field_{index}"\n', f'name = "{spec.name}"\n', 1)
    # a rule no filled copy keeps (the postcode comb has 5 cells) and one every copy keeps
    text = text.replace('name = "postcode"\n', 'name = "postcode"\nlength = 6\n', 1)
    text = text.replace('name = "amount"\n', 'name = "amount"\nrequired = true\n', 1)
    path.write_text(text)
    return path


def test_create_edit_list_show(runner: CliRunner, tmp_path: Path) -> None:
    make_claim_template(runner, tmp_path)
    listed = runner.invoke(app, ["template", "list"])
    assert listed.exit_code == 0 and "policy_number" in listed.output
    shown = runner.invoke(app, ["template", "show", "claim"])
    assert shown.exit_code == 0, shown.output
    assert "postcode" in shown.output and "length=6" in shown.output
    again = runner.invoke(app, ["template", "create", "claim", str(tmp_path / "blank.png")])
    assert again.exit_code == 2 and "exists (use --force" in again.output
    missing = runner.invoke(app, ["template", "show", "nope"])
    assert missing.exit_code == 2 and "no template 'nope'" in missing.output


def test_check_draws_the_aligned_page_and_flags_broken_rules(runner, tmp_path: Path) -> None:
    make_claim_template(runner, tmp_path)
    rng = np.random.default_rng(3)
    scan = warp_scan(render_form(FORM_FAMILIES["claim"], DigitBank.holdout(), rng, dpi=DPI), rng)
    out = tmp_path / "overlay.png"
    result = runner.invoke(
        app, ["template", "check", "claim", str(write(tmp_path / "s.png", scan.image)),
              "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # postcode has 5 cells; the rule says 6
    assert "length 5, expected 6" in result.output and "matched claim" in result.output
    overlay = cv2.imread(str(out))
    assert overlay.shape[:2] == scan.image.shape[:2]  # the template's size (same dpi)
    assert (overlay[..., 2] > overlay[..., 1] + 80).any()  # red: a broken rule drawn


def test_process_names_fields_and_exports_one_row_per_document(runner, tmp_path: Path) -> None:
    make_claim_template(runner, tmp_path)
    rng = np.random.default_rng(4)
    bank = DigitBank.holdout()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    claim = warp_scan(render_form(FORM_FAMILIES["claim"], bank, rng, dpi=DPI), rng)
    write(inbox / "claim.png", claim.image)
    write(inbox / "other.png", render_page(bank, rng, dpi=DPI).image)
    processed = runner.invoke(app, ["process", str(inbox)])
    assert processed.exit_code == 0, processed.output

    wide = runner.invoke(app, ["results", "--template", "claim", "--wide", "--csv"])
    assert wide.exit_code == 0, wide.output
    rows = list(csv.reader(io.StringIO(wide.output)))
    names = [s.name for s in RULED]
    assert rows[0] == ["path", "page", "processed_at", "sha256", "document_id", *names,
                       "needs_review"]  # fmt: skip
    assert len(rows) == 2 and rows[1][0].endswith("claim.png")  # the other form: not a claim
    cells = dict(zip(rows[0], rows[1], strict=True))
    truth = {s.name: t.text for s, t in zip(FORM_FAMILIES["claim"].fields, claim.fields,
                                             strict=True)}  # fmt: skip
    assert sum(cells[n] == truth[n] for n in names) >= len(names) - 2, (cells, truth)
    assert "postcode" in cells["needs_review"].split()

    lines = runner.invoke(app, ["results", "--template", "claim", "--wide", "--json"]).output
    record = json.loads(lines.splitlines()[0])
    assert list(record)[5 : 5 + len(names)] == names and record["postcode"] == cells["postcode"]

    long = list(csv.DictReader(io.StringIO(runner.invoke(app, ["results", "--csv"]).output)))
    assert list(long[0])[:12] == ["path", "page", "x", "y", "w", "h", "text", "confidence",
                                  "kind", "model", "processed_at", "sha256"]  # fmt: skip
    assert list(long[0])[-2:] == ["template", "field"] and "review_reason" in long[0]
    postcode = [r for r in long if r["field"] == "postcode"]
    assert postcode and postcode[0]["review_reason"].endswith("length 5, expected 6")
    assert {r["template"] for r in long if r["path"].endswith("other.png")} == {""}


def test_a_broken_template_stops_process_with_one_line(runner, tmp_path: Path) -> None:
    path = make_claim_template(runner, tmp_path)
    path.write_text(path.read_text().replace('layout = "box"', 'layout = "square"', 1))
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.png", np.full((200, 200), 255, np.uint8))
    result = runner.invoke(app, ["process", str(tmp_path / "in")])
    assert result.exit_code == 2
    assert f"ocrd: error: {path}: fields[1].layout: expected one of" in result.output
