"""`ocrd read` and `ocrd inspect` on generated form pages (real files, real models)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ocrd.cli import app
from training.forms import generate


def ocrd(*args: object):
    return CliRunner().invoke(app, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def form(tmp_path_factory):
    """One clean 150-dpi form page (PNG) and its truth."""
    root = tmp_path_factory.mktemp("cli-forms")
    [path] = generate(
        root, pages=1, seed=9, split="t10k", fmt="png", dpi=150, degradations=("clean",)
    )
    return path, json.loads(path.with_suffix(".json").read_text())["pages"][0]


@pytest.fixture(scope="module")
def models_available():
    from ocrd.recognition import load_recognizer

    try:
        load_recognizer()
    except Exception as exc:  # weights not shipped in this checkout yet
        pytest.skip(f"shipped models not loadable: {exc}")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a scan\n")
    return path


def test_read_prints_a_table_row_per_field(form, models_available):
    path, truth = form
    result = ocrd("read", path)
    assert result.exit_code == 0, result.output
    printed = [f["text"] for f in truth["fields"] if f["kind"] == "printed"]
    assert printed and all(text in result.stdout for text in printed)
    assert result.stdout.count(path.name) == len(truth["fields"])


def test_read_json_lines_carry_text_confidence_kind_and_box(form, models_available):
    path, truth = form
    result = ocrd("read", "--json", path)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(truth["fields"])
    for row in rows:
        assert set(row) >= {"file", "page", "text", "confidence", "kind", "box", "digits"}
        x, y, w, h = row["box"]
        assert x >= 0 and x + w <= truth["width"] and y >= 0 and y + h <= truth["height"]
        assert 0.0 <= row["confidence"] <= 1.0 and row["kind"] in ("handwritten", "printed")
    assert {r["text"] for r in rows} & {f["text"] for f in truth["fields"]}


def test_read_reports_bad_files_and_carries_on(form, text_file, models_available):
    path, _ = form
    result = ocrd("read", "--json", text_file, path)
    assert result.exit_code == 1
    assert f"ocrd: {text_file}: not an image (looks like text)" in result.stderr
    assert len(result.stdout.splitlines()) > 0  # the good file was still read


def test_read_missing_path_is_a_usage_error(tmp_path):
    result = ocrd("read", tmp_path / "nope.png")
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr


def test_inspect_draws_each_field_on_the_page(form, tmp_path, models_available):
    path, truth = form
    out = tmp_path / "overlay.png"
    result = ocrd("inspect", path, "--out", out)
    assert result.exit_code == 0, result.output
    overlay = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert overlay.shape[1] == truth["width"] and overlay.shape[0] > truth["height"]  # + legend
    overlay = overlay[: truth["height"]]  # the page, in page coordinates
    coloured = np.abs(overlay.astype(int) - overlay[..., :1]).max(axis=2) > 60
    for field in truth["fields"]:  # a coloured box edge near every field
        x, y, w, h = field["box"]
        assert coloured[max(0, y - 25) : y + h + 25, max(0, x - 25) : x + w + 25].any()
    assert f"{len(truth['fields'])} field(s)" in result.stdout


def test_inspect_fields_only_needs_no_models(form, tmp_path):
    path, truth = form
    out = tmp_path / "fields.jpg"
    result = ocrd("inspect", path, "--out", out, "--fields-only")
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)).shape[1] == truth["width"]


def test_inspect_errors(form, text_file, tmp_path):
    path, _ = form
    missing_page = ocrd("inspect", path, "--out", tmp_path / "o.png", "--page", 2, "--fields-only")
    assert missing_page.exit_code == 2 and "has no page 2" in missing_page.stderr
    bad = ocrd("inspect", text_file, "--out", tmp_path / "o.png")
    assert bad.exit_code == 1 and "looks like text" in bad.stderr
    assert not (tmp_path / "o.png").exists()
