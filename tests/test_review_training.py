"""Corrections feed training: `python -m training corrections` exports the reviewed crops with
their labels, and the trainers' --extra loaders read them normalised as the pipeline does."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from ocrd.store import Result
from ocrd.store.reviews import Decision, ReviewStatus, decide
from training.__main__ import main as training_main
from training.corrections import (
    DIGIT_REPEAT,
    LINE_REPEAT,
    digit_corrections,
    extra_lines,
    line_corrections,
    with_digit_corrections,
)

from .review_pages import store_page


@pytest.fixture
def exported(store, tmp_path: Path) -> Path:  # noqa: ANN001
    store_page(store, tmp_path / "processed")
    with store.session() as session:
        ids = list(session.scalars(select(Result.id).order_by(Result.id)))
        decide(session, Decision(ids[0], ReviewStatus.ACCEPTED, None, "ann"))  # 4711
        decide(session, Decision(ids[1], ReviewStatus.CORRECTED, "2026", "ann"))  # was 2028
        decide(session, Decision(ids[2], ReviewStatus.ILLEGIBLE, None, "ann"))  # left out
        decide(session, Decision(ids[4], ReviewStatus.CORRECTED, "3057", "ann"))  # one more digit
    out = tmp_path / "corrections"
    url = store.url.render_as_string(hide_password=False)
    assert training_main(["corrections", "--db", url, "--out", str(out)]) == 0
    return out


def test_export_writes_reviewed_crops_with_their_labels(exported: Path) -> None:
    with open(exported / "fields.csv", newline="") as handle:
        fields = list(csv.DictReader(handle))
    assert [(f["text"], f["status"], f["field"]) for f in fields] == [
        ("4711", "accepted", "amount"), ("2026", "corrected", "year"),
        ("3057", "corrected", "code"),
    ]  # fmt: skip
    with open(exported / "digits.csv", newline="") as handle:
        digits = list(csv.DictReader(handle))
    # 3057 has four digits but the reader cut three boxes: no digit crops from it
    assert "".join(d["label"] for d in digits) == "47112026"
    for row in fields + digits:
        assert (exported / row["file"]).stat().st_size > 100


def test_loaders_normalise_like_the_pipeline(exported: Path) -> None:
    x, y = digit_corrections(exported)
    assert x.shape == (8, 28, 28) and x.dtype == np.float32 and list(y) == [4, 7, 1, 1, 2, 0, 2, 6]
    assert all(0.02 < crop.mean() < 0.6 for crop in x)  # ink found and centred, not blank
    lines = line_corrections(exported)
    assert [text for _, text in lines] == ["4711", "2026", "3057"]
    assert all(line.shape[0] == 32 for line, _ in lines)
    more_x, more_y = with_digit_corrections(exported, (x[:2], y[:2]), log=lambda _: None)
    assert len(more_y) == 2 + 8 * DIGIT_REPEAT
    assert len(extra_lines(exported, log=lambda _: None)) == 3 * LINE_REPEAT


def test_corrections_needs_db_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        training_main(["corrections"])
    assert "corrections needs --db" in capsys.readouterr().err
