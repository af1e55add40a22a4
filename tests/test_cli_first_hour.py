"""What a new user meets in the first hour (issue 14), through the installed `ocrd` console
script on real SQLite files and real images: duplicates that name their original, `ocrd show`,
the results table on an 80-column terminal, the -o format, help and --version, status with its
failures, and inspect's one-line errors, legend, review marks and --page all."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocrd.cli.vision import LEGEND, REVIEW, draw_overlay, label_rect
from ocrd.types import Box, Field, FieldReading, Page

from .conftest import write_png
from .test_cli_store import console_script, store_reading

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PLACEHOLDER = re.compile(r"<(bool|str|int|float|path|file|list\[[^]]*\])[^>]*>")


def run(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(console_script()), *(str(a) for a in args)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env,
    )  # fmt: skip


def run_in_terminal(*args: object, cwd: Path, columns: int = 80) -> str:
    """The command's output on a real pseudo-terminal ``columns`` wide (escapes removed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm"
    process = subprocess.Popen(
        [str(console_script()), *(str(a) for a in args)],
        stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=60)
    os.close(master)
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r", "")


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ocrd.db'}"


@pytest.fixture
def original_and_duplicate(db: str, tmp_path: Path) -> tuple[Path, int, Path]:
    original = write_png(tmp_path / "first" / "form.png", seed=21)
    original_id = store_reading(db, original, ["4711", "08"])
    copy = tmp_path / "later" / "scan.png"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    return original, original_id, copy


# -- 2. duplicates name their original -----------------------------------------------------------


def test_a_duplicate_names_its_original_everywhere(db, tmp_path, original_and_duplicate):
    original, original_id, copy = original_and_duplicate
    processed = run("process", copy, "--db", db, cwd=tmp_path)
    assert processed.returncode == 0, processed.stderr
    assert f"same content as #{original_id} {original}" in processed.stderr

    table = run("results", "--status", "duplicate", "--db", db, cwd=tmp_path)
    assert f"duplicate of form.png #{original_id}" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run("results", "--status", "duplicate", "--csv",
                                               "--db", db, cwd=tmp_path).stdout)))  # fmt: skip
    assert [(r["path"], r["duplicate_of"], r["duplicate_of_path"]) for r in rows] == [
        (str(copy), str(original_id), str(original))
    ]
    (record,) = map(json.loads, run("results", "--status", "duplicate", "--json", "--db", db,
                                    cwd=tmp_path).stdout.splitlines())  # fmt: skip
    assert record["duplicate_of"] == original_id and record["duplicate_of_path"] == str(original)


def test_path_on_a_duplicate_gives_the_originals_results_marked(
    db, tmp_path, original_and_duplicate
):
    original, original_id, copy = original_and_duplicate
    run("process", copy, "--db", db, cwd=tmp_path)
    exported = run("results", "--path", "scan.png", "--csv", "--db", db, cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["text"] for r in rows] == ["4711", "08"]
    assert {(r["path"], r["status"], r["duplicate_of"]) for r in rows} == {
        (str(copy), "duplicate", str(original_id))
    }
    table = run("results", "--path", "*scan*", "--db", db, cwd=tmp_path)
    assert "no results match" not in table.stdout
    assert "4711" in table.stdout and f"duplicate of form.png #{original_id}" in table.stdout
    plain = run("results", "--csv", "--db", db, cwd=tmp_path)  # without --path: no repeats
    assert [r["text"] for r in csv.DictReader(io.StringIO(plain.stdout))] == ["4711", "08"]


# -- 3. ocrd show ---------------------------------------------------------------------------------


def test_show_by_file_id_sha256_and_name(db, tmp_path, original_and_duplicate):
    original, original_id, copy = original_and_duplicate
    run("process", copy, "--db", db, cwd=tmp_path)

    by_file = run("show", copy, "--db", db, cwd=tmp_path)
    assert by_file.returncode == 0, by_file.stderr
    assert "duplicate" in by_file.stdout and f"duplicate of #{original_id}" in by_file.stdout
    assert str(original) in by_file.stdout and f"read from the original #{original_id}" in (
        by_file.stdout
    )
    # Reading order; "08" as a reading of its own, not inside a time or a temporary path.
    first, second = (re.search(rf"(?<![\w:./-]){text}(?![\w:])", by_file.stdout)
                     for text in ("4711", "08"))  # fmt: skip
    assert first and second and first.start() < second.start()

    record = json.loads(run("show", original_id, "--json", "--db", db, cwd=tmp_path).stdout)
    assert record["id"] == original_id and record["status"] == "done"
    assert record["pages"] == 1 and record["finished_at"]
    assert [f["text"] for f in record["fields"]] == ["4711", "08"]
    assert [d["path"] for d in record["duplicates"]] == [str(copy)]
    sha = record["sha256"]
    by_sha = json.loads(run("show", sha, "--json", "--db", db, cwd=tmp_path).stdout)
    assert by_sha["sha256"] == sha
    by_name = json.loads(run("show", "form.png", "--json", "--db", db, cwd=tmp_path).stdout)
    assert by_name["id"] == original_id

    missing = run("show", "nothing-like-this.png", "--db", db, cwd=tmp_path)
    assert missing.returncode == 1 and "no document matches" in missing.stderr


def test_show_a_failed_document_gives_its_reason(db, tmp_path):
    bad = tmp_path / "drop" / "notes.png"
    bad.parent.mkdir()
    bad.write_text("not a scan\n")
    run("process", bad, "--db", db, cwd=tmp_path)
    shown = run("show", bad, "--db", db, cwd=tmp_path)
    assert "failed" in shown.stdout and "not an image (looks like text)" in shown.stdout


# -- 4. the results table -------------------------------------------------------------------------


def test_results_table_fits_80_columns_newest_first(db, tmp_path):
    deep = tmp_path / "a-rather-long-folder-name" / "another-level-of-folders"
    old = write_png(deep / "scan-0001-oldest.png", seed=31)
    store_reading(db, old, ["111"])
    new = write_png(deep / "scan-0002-newest.png", seed=32)
    store_reading(db, new, ["222"])

    screen = run_in_terminal("results", "--db", db, cwd=tmp_path, columns=80)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines and max(len(line) for line in lines) <= 80, screen
    assert "scan-0002-newest.png" in screen  # the whole name
    assert "a-rather-long-folder" not in screen  # not the path
    assert screen.index("222") < screen.index("111")  # newest first
    flipped = run("results", "--oldest-first", "--db", db, cwd=tmp_path).stdout
    assert flipped.index("111") < flipped.index("222")


# -- 5. -o takes the format from the extension ----------------------------------------------------


def test_output_format_follows_the_extension(db, tmp_path):
    store_reading(db, write_png(tmp_path / "x.png", seed=41), ["12", "34"])
    for name in ("out.json", "out.jsonl"):
        assert run("results", "-o", name, "--db", db, cwd=tmp_path).returncode == 0
        records = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        assert [r["text"] for r in records] == ["12", "34"]
    run("results", "-o", "out.csv", "--db", db, cwd=tmp_path)
    assert (tmp_path / "out.csv").read_text().startswith("path,page,x,y,w,h,text,")
    run("results", "-o", "out.txt", "--db", db, cwd=tmp_path)
    assert "12" in (tmp_path / "out.txt").read_text()  # a table

    mismatch = run("results", "--csv", "-o", "wrong.json", "--db", db, cwd=tmp_path)
    assert mismatch.returncode == 2 and mismatch.stderr.count("\n") == 1
    assert mismatch.stderr.startswith("ocrd: error: --csv does not match")
    assert not (tmp_path / "wrong.json").exists()


# -- 6. help and --version ------------------------------------------------------------------------


def test_version_does_not_import_tensorflow(tmp_path):
    python = console_script().parent / "python"
    result = subprocess.run(
        [str(python), "-X", "importtime", "-m", "ocrd", "--version"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((Path(__file__).parents[1] / "ocrd/models/manifest.json").read_text())
    assert result.stdout.startswith("ocrd 0.")
    for entry in manifest["models"].values():
        assert f"{entry['name']}@{entry['version']}" in result.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "numpy" in imported or "typer" in imported  # -X importtime did report
    assert not [m for m in imported if m.split(".")[0] in ("tensorflow", "keras")]
    assert run("--version", cwd=tmp_path).stdout == result.stdout


COMMANDS = ("watch", "retry", "process", "results", "status", "show", "config", "read",
            "inspect", "db upgrade", "db current")  # fmt: skip


def test_help_reads_as_prose_without_type_placeholders() -> None:
    from typer.testing import CliRunner

    from ocrd.cli import app

    for command in COMMANDS:
        shown = CliRunner(env={"COLUMNS": "100"}).invoke(app, [*command.split(), "--help"])
        assert shown.exit_code == 0, shown.output
        assert not PLACEHOLDER.search(shown.stdout), (command, shown.stdout)
        prose = [ln.strip() for ln in shown.stdout.splitlines() if ln[:1] == " " and "│" not in ln]
        # a paragraph wraps at the terminal's width, never short in mid-sentence
        for line, following in zip(prose, prose[1:], strict=False):
            if following and following[0].islower() and not line.endswith((".", ":", ")")):
                assert len(line) > 60, f"stray line break in {command} --help: {line!r}"


# -- 9. status shows failures ---------------------------------------------------------------------


def test_status_lists_last_failures_and_counts_by_reason(db, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.png").write_text("text, not an image\n")
    (drop / "b.png").write_text("more text\n")
    (drop / "empty.png").write_bytes(b"")
    run("process", drop, "--db", db, cwd=tmp_path)

    summary = json.loads(run("status", "--json", "--db", db, cwd=tmp_path).stdout)
    assert summary["failure_reasons"] == {"not an image (looks like text)": 2, "empty file": 1}
    assert {Path(f["path"]).name for f in summary["recent_failures"]} == {
        "a.png", "b.png", "empty.png"
    }  # fmt: skip
    readable = run("status", "--db", db, cwd=tmp_path).stdout
    assert "2 not an image (looks like text)" in readable and "1 empty file" in readable
    assert "empty.png" in readable


# -- 1, 10. inspect ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_page_tiff(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Two generated form pages at different dpi in one TIFF, and their truth."""
    from training.forms import DigitBank, render_page, write_document

    rng = np.random.default_rng(5)
    bank = DigitBank.load("t10k")
    pages = [render_page(bank, rng, dpi=dpi, rows=2) for dpi in (150, 200)]
    path = tmp_path_factory.mktemp("tiff") / "two.tif"
    return path, write_document(pages, path, "tiff")["pages"]


def test_inspect_bad_out_is_one_line_naming_the_formats(two_page_tiff, tmp_path):
    path, _ = two_page_tiff
    for out in ("x.txt", "overlay"):
        result = run("inspect", path, "--out", out, "--fields-only", cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("ocrd: error: --out")
        assert ".png" in result.stderr and ".pdf" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / out).exists()


def test_inspect_page_all_one_image_per_page_or_one_pdf(two_page_tiff, tmp_path):
    path, truth = two_page_tiff
    result = run("inspect", path, "--out", "ov.png", "--page", "all", "--fields-only",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for number, page in enumerate(truth, start=1):
        image = cv2.imread(str(tmp_path / f"ov-{number}.png"))
        assert image.shape[1] == page["width"] and image.shape[0] > page["height"]  # + legend
    as_pdf = run("inspect", path, "--out", "ov.pdf", "--page", "all", "--fields-only",
                 cwd=tmp_path)  # fmt: skip
    assert as_pdf.returncode == 0, as_pdf.stderr
    import pypdfium2

    assert len(pypdfium2.PdfDocument(str(tmp_path / "ov.pdf"))) == 2


def test_tiff_and_pdf_pages_keep_their_own_dpi(two_page_tiff, tmp_path):
    """The form generator writes each page's dpi (it used to give every page page 1's)."""
    from ocrd.vision.loading import iter_pages
    from training.forms import DigitBank, render_page, write_document

    path, truth = two_page_tiff
    assert [p.dpi for p in iter_pages(path)] == [150, 200] == [t["dpi"] for t in truth]
    rng = np.random.default_rng(6)
    bank = DigitBank.load("t10k")
    pages = [render_page(bank, rng, dpi=dpi, rows=1) for dpi in (150, 300)]
    pdf_truth = write_document(pages, tmp_path / "two.pdf", "pdf")["pages"]
    rendered = [p.image.shape for p in iter_pages(tmp_path / "two.pdf")]
    for (height, width), page in zip(rendered, pdf_truth, strict=True):
        assert abs(height - page["height"]) <= 2 and abs(width - page["width"]) <= 2


def _page_with_field(box: Box) -> tuple[Page, Field]:
    image = np.full((400, 600), 255, np.uint8)
    cv2.putText(image, "42", (box.x + 5, box.y + box.h - 8), cv2.FONT_HERSHEY_SIMPLEX, 1, 0, 2)
    return Page(1, image, 150), Field(1, box, "handwritten", "box", None)


def test_overlay_marks_review_fields_and_draws_the_legend() -> None:
    box = Box(100, 150, 120, 40)
    page, field = _page_with_field(box)
    plain = FieldReading(1, box, "42", 0.95, "handwritten", "t@1")
    review = FieldReading(1, box, "42", 0.95, "handwritten", "t@1", needs_review=True,
                          review_reason="low confidence")  # fmt: skip
    calm = draw_overlay(page, [field], [plain])
    marked = draw_overlay(page, [field], [review])
    is_review = np.all(marked[:400] == REVIEW, axis=2)
    assert is_review.any() and not np.all(calm[:400] == REVIEW, axis=2).any()
    assert calm.shape[0] > 400 and calm.shape[1] == 600  # the legend band below the page
    band = calm[400:]
    for colour, _ in LEGEND[:3]:  # the swatches that fit a 600-px page
        assert np.all(band == colour, axis=2).any()


def test_labels_stay_clear_of_their_box() -> None:
    for box in (Box(50, 200, 100, 40), Box(50, 2, 100, 40), Box(560, 100, 60, 30)):
        x0, y0, x1, y1 = label_rect(box, (70, 12), 4, clearance=6, page=(400, 600))
        outline = (box.x - 3, box.y - 3, box.x + box.w + 3, box.y + box.h + 3)
        overlaps = x0 < outline[2] and outline[0] < x1 and y0 < outline[3] and outline[1] < y1
        assert not overlaps, (box, (x0, y0, x1, y1))
        assert x0 >= 0 and x1 <= 600 and y0 >= 0 and y1 <= 400


# -- 7. ocrd watch start-up ----------------------------------------------------------------------


def test_watch_checks_everything_before_creating_folders_and_says_it_once(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    unreachable = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'ocrd.db'}"
    started = run("watch", inbox, "--db", unreachable, cwd=tmp_path)
    assert started.returncode == 2
    assert started.stderr.count("\n") == 1 and started.stderr.startswith("ocrd watch: error: ")
    assert "does not exist" in started.stderr
    assert "error" not in started.stdout.lower()  # not a second time as a log line
    assert not (tmp_path / "processed").exists() and not (tmp_path / "failed").exists()

    a_file = tmp_path / "notes.txt"  # a missing folder that cannot be made (even as root)
    a_file.write_text("not a folder\n")
    refused = run("watch", inbox, "--processed", a_file / "done", "--db", tmp_path / "ok.db",
                  cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "cannot create processed folder" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert not (tmp_path / "failed").exists()
