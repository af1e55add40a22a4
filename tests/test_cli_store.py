"""The store commands on SQLite and PostgreSQL: process, results, status, db; errors exit 2
with one line; `ocrd results --since today --csv` end to end through the console script."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ocrd.cli import app
from ocrd.store import Document, open_store
from ocrd.store import documents as lifecycle
from ocrd.store.queries import STABLE_COLUMNS
from ocrd.types import Box, DigitReading, DocumentReading, FieldReading

from .conftest import write_png

CSV_HEADER_START = "path,page,x,y,w,h,text,confidence,kind,model,processed_at,sha256"


def ocrd(*args: str) -> object:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def store_reading(db_url: str, path: Path, texts: list[str], kind: str = "handwritten") -> int:
    """Record a document read with these texts through the store API (no models needed)."""
    fields = [
        FieldReading(1, Box(5 + 50 * i, 7, 40, 30), text, 0.8 + 0.01 * i, kind, "t@1",  # type: ignore[arg-type]
                     [DigitReading(text[0], 0.81, Box(5 + 50 * i, 7, 10, 30))])
        for i, text in enumerate(texts)
    ]  # fmt: skip
    store = open_store(db_url)
    with store.session() as session:
        document = lifecycle.register(session, path, lifecycle.digest_file(path))
        lifecycle.start(session, document.id)
        lifecycle.finish(session, document.id, DocumentReading("image/png", 1, fields))
    store.dispose()
    return document.id


def all_documents(db_url: str, *, duplicates: bool = True) -> dict[str, Document]:
    store = open_store(db_url, upgrade=False)
    with store.session(write=False) as session:
        query = select(Document).order_by(Document.id)
        if not duplicates:
            query = query.where(Document.status != "duplicate")
        rows = session.scalars(query).all()
    store.dispose()
    return {Path(row.path).name: row for row in rows}


def test_process_names_each_failure_and_exits_1(db_url: str, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "empty.png").write_bytes(b"")
    (inbox / "notes.txt").write_text("hello, not a scan\n")
    (inbox / ".partial.png").write_bytes(b"ignored by the default ignore patterns")
    result = ocrd("process", inbox, "--db", db_url)

    assert result.exit_code == 1
    failures = result.stderr.strip().splitlines()
    assert len(failures) == 2
    assert all(line.startswith("ocrd: failed: ") for line in failures)
    assert any("empty.png" in line for line in failures)
    assert any("notes.txt" in line for line in failures)
    assert "2 files: 0 done (0 results), 0 duplicate, 2 failed" in result.stdout

    stored = all_documents(db_url)
    assert set(stored) == {"empty.png", "notes.txt"}
    for name, document in stored.items():
        assert document.status == "failed" and document.error and document.attempts == 1
        assert document.size == (inbox / name).stat().st_size
        assert len(document.sha256) == 64


def test_process_records_content_already_read_as_duplicate(db_url: str, tmp_path: Path) -> None:
    original = write_png(tmp_path / "a" / "form.png", seed=3)
    canonical_id = store_reading(db_url, original, ["42"])
    copy = tmp_path / "b" / "form-again.png"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)

    result = ocrd("process", copy, "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "1 file: 0 done (0 results), 1 duplicate, 0 failed" in result.stdout
    duplicate = all_documents(db_url)["form-again.png"]
    assert duplicate.status == "duplicate" and duplicate.duplicate_of == canonical_id


def test_process_reads_images(db_url: str, tmp_path: Path) -> None:
    """Real pipeline on real PNGs: bookkeeping is stored; --reprocess reads content again."""
    first = write_png(tmp_path / "scans" / "one.png", width=300, height=200, seed=1)
    write_png(tmp_path / "scans" / "deeper" / "two.png", width=300, height=200, seed=2)
    result = ocrd("process", tmp_path / "scans", "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "2 files: 2 done" in result.stdout
    stored = all_documents(db_url)
    assert {name: d.status for name, d in stored.items()} == {"one.png": "done", "two.png": "done"}
    assert stored["one.png"].pages == 1 and stored["one.png"].media_type == "image/png"

    not_recursive = ocrd("process", tmp_path / "scans", "--no-recursive", "--db", db_url)
    assert "1 file: 0 done (0 results), 1 duplicate" in not_recursive.stdout

    again = ocrd("process", first, "--reprocess", "--db", db_url)
    assert again.exit_code == 0 and "1 file: 1 done" in again.stdout
    canonical = all_documents(db_url, duplicates=False)["one.png"]
    assert canonical.attempts == 2 and canonical.status == "done"


def test_results_formats(db_url: str, tmp_path: Path) -> None:
    write_png(tmp_path / "x.png", seed=5)
    store_reading(db_url, tmp_path / "x.png", ["123", "9"])
    write_png(tmp_path / "y.png", seed=6)
    store_reading(db_url, tmp_path / "y.png", ["77"], kind="printed")

    as_csv = ocrd("results", "--csv", "--db", db_url)
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.startswith(CSV_HEADER_START + ",")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["text"] for row in rows] == ["77", "123", "9"]  # newest document first
    assert rows[1]["path"] == str(tmp_path / "x.png") and rows[1]["confidence"] == "0.8"
    assert json.loads(rows[1]["digits"])[0]["digit"] == "1"
    oldest_first = ocrd("results", "--csv", "--oldest-first", "--db", db_url)
    assert [r["text"] for r in csv.DictReader(io.StringIO(oldest_first.stdout))] == [
        "123", "9", "77"
    ]  # fmt: skip

    as_json = ocrd("results", "--json", "--kind", "printed", "--db", db_url)
    (line,) = as_json.stdout.strip().splitlines()
    record = json.loads(line)
    assert list(record)[: len(STABLE_COLUMNS)] == list(STABLE_COLUMNS)
    assert record["text"] == "77" and record["kind"] == "printed" and record["page"] == 1

    table = ocrd("results", "--limit", "2", "--db", db_url)
    assert table.exit_code == 0
    assert "77" in table.stdout and "123" in table.stdout and " 9 " not in table.stdout
    assert "1 more rows not shown" in table.stdout
    nothing = ocrd("results", "--since", "1h", "--kind", "unknown", "--db", db_url)
    assert nothing.exit_code == 0 and "no results match" in nothing.stdout
    before_today = ocrd("results", "--until", "today", "--csv", "--db", db_url)
    assert before_today.stdout.splitlines() == [as_csv.stdout.splitlines()[0]]  # header only

    out = tmp_path / "export.csv"
    to_file = ocrd("results", "--csv", "--min-confidence", "0.805", "--output", out, "--db", db_url)
    assert to_file.exit_code == 0 and to_file.stdout == ""
    exported = list(csv.DictReader(out.open(newline="")))
    assert [row["text"] for row in exported] == ["9"]


def test_status_command(db_url: str, tmp_path: Path) -> None:
    write_png(tmp_path / "s.png", seed=8)
    store_reading(db_url, tmp_path / "s.png", ["1", "2", "3"])
    result = ocrd("status", "--json", "--db", db_url)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"]["done"] == 1 and summary["results"] == 3
    assert summary["last_processed"]["path"] == str(tmp_path / "s.png")
    assert summary["results_per_minute"] == pytest.approx(3 / 60, abs=1e-3)
    assert summary["oldest_pending"] is None

    readable = ocrd("status", "--db", db_url)
    assert "done" in readable.stdout and "s.png" in readable.stdout


def test_db_upgrade_and_current(db_url: str) -> None:
    before = ocrd("db", "current", "--db", db_url)
    assert before.exit_code == 0 and "revision none" in before.stdout
    upgraded = ocrd("db", "upgrade", "--db", db_url)
    assert upgraded.exit_code == 0, upgraded.output
    after = ocrd("db", "current", "--db", db_url)
    assert "up to date" in after.stdout


def assert_one_line_error(result: object, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocrd: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_bad_input_is_one_line_and_exit_2(db_url: str, tmp_path: Path) -> None:
    open_store(db_url).dispose()
    assert_one_line_error(ocrd("results", "--since", "soonish", "--db", db_url), "soonish")
    assert_one_line_error(ocrd("results", "--until", "2026-13-45", "--db", db_url), "--until")
    assert_one_line_error(ocrd("results", "--csv", "--json", "--db", db_url), "--csv")
    missing = tmp_path / "missing.png"
    assert_one_line_error(ocrd("process", missing, "--db", db_url), str(missing))


def test_unmigrated_database_says_how_to_fix(db_url: str) -> None:
    assert_one_line_error(ocrd("results", "--db", db_url), "ocrd db upgrade")
    assert_one_line_error(ocrd("status", "--db", db_url), "ocrd db upgrade")


def test_unreachable_database_names_the_masked_url(tmp_path: Path) -> None:
    url = "postgresql://reader:s3cret@127.0.0.1:9/nowhere"
    result = ocrd("status", "--db", url)
    assert_one_line_error(result, "127.0.0.1:9", "reader:***")
    assert "s3cret" not in result.stderr
    no_folder = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    assert_one_line_error(ocrd("db", "upgrade", "--db", no_folder), "does not exist")


def console_script() -> Path:
    script = Path(sys.executable).parent / "ocrd"
    found = script if script.exists() else shutil.which("ocrd")
    assert found, "the `ocrd` console script is not installed (pip install -e .)"
    return Path(found)


def test_results_since_today_csv_through_the_console_script(db_url: str, tmp_path: Path) -> None:
    write_png(tmp_path / "done.png", seed=11)
    store_reading(db_url, tmp_path / "done.png", ["2024", "7"])
    bad = tmp_path / "drop" / "broken.png"
    bad.parent.mkdir()
    bad.write_text("a text file with an image's name\n")

    script = str(console_script())
    processed = subprocess.run(
        [script, "process", str(bad.parent), "--db", db_url],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert processed.returncode == 1
    assert "broken.png" in processed.stderr and "Traceback" not in processed.stderr

    exported = subprocess.run(
        [script, "results", "--since", "today", "--csv", "--db", db_url],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    header, *lines = exported.stdout.splitlines()
    assert header.startswith(CSV_HEADER_START)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(Path(r["path"]).name, r["text"]) for r in rows] == [("done.png", "2024"),
                                                                ("done.png", "7")]  # fmt: skip
    assert len(lines) == 2
