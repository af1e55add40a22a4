"""`ocrd results --template NAME --wide --csv|--json`: one row per document (not per page),
one column per field in the template file's order, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from ocrd.cli import app
from ocrd.store import documents
from ocrd.store.documents import FileDigest
from ocrd.templates import save_template
from ocrd.templates.model import Fingerprint, Template, TemplateField
from ocrd.types import Box, DocumentReading, FieldReading

ORDER = ["policy", "amount", "postcode"]  # the file's order; results are stored otherwise


def _template(directory: Path) -> None:
    rng = np.random.default_rng(0)
    fingerprint = Fingerprint(
        100, 140, rng.uniform(0, 100, (20, 2)).astype(np.float32),
        rng.integers(0, 256, (20, 32), dtype=np.uint8),
    )  # fmt: skip
    fields = tuple(
        TemplateField(name, Box(10, 10 + 40 * i, 200, 30), "box") for i, name in enumerate(ORDER)
    )
    save_template(Template("claim", 800, 1100, 100, fields, fingerprint), directory / "claim.toml")


def _reading(page: int, field: str | None, text: str, review: bool = False) -> FieldReading:
    return FieldReading(
        page=page, box=Box(10, 10, 50, 20), text=text, confidence=0.9, kind="handwritten",
        model="m@1", needs_review=review, review_reason="checked" if review else None,
        template="claim" if field else None, field_name=field,
    )  # fmt: skip


def _add(store, name: str, fields: list[FieldReading]) -> None:  # noqa: ANN001
    digest = FileDigest(sha256=name.encode().hex().ljust(64, "0")[:64], size=len(name))
    with store.session() as session:
        document = documents.register(session, f"/in/{name}", digest)
        documents.start(session, document.id, worker="test:1")
        pages = max(f.page for f in fields)
        documents.finish(session, document.id, DocumentReading("image/tiff", pages, fields))


def test_wide_is_one_row_per_document_in_the_templates_field_order(
    store, db_url: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OCRD_DATABASE_URL", db_url)
    monkeypatch.setenv("OCRD_TEMPLATES_DIR", str(tmp_path / "templates"))
    _template(tmp_path / "templates")
    # two copies of the form in one two-page file; the postcode left empty on the first
    _add(store, "two.tif", [
        _reading(1, "amount", "22"), _reading(1, "policy", "11"), _reading(1, "postcode", ""),
        _reading(2, "amount", "44"), _reading(2, "policy", "33"), _reading(2, None, "999"),
    ])  # fmt: skip
    _add(store, "one.png", [_reading(1, "amount", "5", review=True), _reading(1, "policy", "6")])
    _add(store, "other.png", [_reading(1, None, "77")])  # matched no template

    runner = CliRunner()
    wide = runner.invoke(app, ["results", "--template", "claim", "--wide", "--csv"])
    assert wide.exit_code == 0, wide.output
    rows = list(csv.reader(io.StringIO(wide.output)))
    assert rows[0] == ["path", "page", "processed_at", "sha256", "document_id", *ORDER,
                       "needs_review"]  # fmt: skip
    by_path = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert sorted(by_path) == ["/in/one.png", "/in/two.tif"]  # one row each, no "other"
    two = by_path["/in/two.tif"]
    got = (two["page"], two["policy"], two["amount"], two["postcode"])
    assert got == ("1", "11 | 33", "22 | 44", "")
    assert two["needs_review"].split() == ["amount", "policy"]  # read twice: a person decides
    one = by_path["/in/one.png"]
    assert (one["policy"], one["amount"], one["postcode"], one["needs_review"]) == (
        "6", "5", "", "amount",
    )  # fmt: skip

    lines = runner.invoke(app, ["results", "--template", "claim", "--wide", "--json"]).output
    records = [json.loads(line) for line in lines.splitlines()]
    assert len(records) == 2 and all(list(r)[5:8] == ORDER for r in records)
    assert {r["path"]: r["policy"] for r in records} == {"/in/one.png": "6",
                                                         "/in/two.tif": "11 | 33"}  # fmt: skip
