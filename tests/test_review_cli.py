"""The review data through the CLI on SQLite and PostgreSQL: the CSV's review columns at the
end, --final, --needs-review, the queue in `ocrd status`, and `ocrd review` serving."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ocrd.cli import app
from ocrd.config import ConfigError, load_settings
from ocrd.store import Result
from ocrd.store.queries import STABLE_COLUMNS
from ocrd.store.reviews import Decision, ReviewStatus, decide

from .conftest import _free_port
from .review_pages import store_page


def ocrd(*args: str) -> object:
    return CliRunner().invoke(app, [str(arg) for arg in args])


@pytest.fixture
def reviewed(store, tmp_path: Path):  # noqa: ANN001, ANN201
    """A page with three of its four marked fields decided."""
    store_page(store, tmp_path / "processed")
    with store.session() as session:
        ids = list(session.scalars(select(Result.id).order_by(Result.id)))
        decide(session, Decision(ids[0], ReviewStatus.ACCEPTED, None, "ann"))
        decide(session, Decision(ids[1], ReviewStatus.CORRECTED, "2026", "ann"))
        decide(session, Decision(ids[2], ReviewStatus.ILLEGIBLE, "ignored", "bob"))
    store.ids = ids
    return store


def url_of(store) -> str:  # noqa: ANN001
    return store.url.render_as_string(hide_password=False)


def rows(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output)))


def test_csv_appends_review_columns_and_keeps_the_machine_text(reviewed) -> None:  # noqa: ANN001
    result = ocrd("results", "--csv", "--db", url_of(reviewed))
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split(",")
    assert tuple(header[:12]) == STABLE_COLUMNS
    assert header[-2:] == ["review_status", "reviewed_text"]
    got = [(r["text"], r["review_status"], r["reviewed_text"]) for r in rows(result.output)]
    assert got == [("4711", "accepted", "4711"), ("2028", "corrected", "2026"),
                   ("1294", "illegible", ""), ("77", "", ""), ("305", "", "")]  # fmt: skip
    final = ocrd("results", "--csv", "--final", "--db", url_of(reviewed))
    assert [r["text"] for r in rows(final.output)] == ["4711", "2026", "", "77", "305"]
    as_json = ocrd("results", "--json", "--final", "--db", url_of(reviewed))
    records = [json.loads(line) for line in as_json.output.splitlines()]
    assert records[1]["text"] == "2026" and records[1]["review_status"] == "corrected"


def test_needs_review_lists_the_queue(reviewed) -> None:  # noqa: ANN001
    waiting = ocrd("results", "--csv", "--needs-review", "--db", url_of(reviewed))
    assert [r["text"] for r in rows(waiting.output)] == ["305"]
    table = ocrd("results", "--needs-review", "--db", url_of(reviewed))
    assert "305" in table.output and "4711" not in table.output


def test_status_shows_queue_length_and_age(reviewed) -> None:  # noqa: ANN001
    shown = ocrd("status", "--db", url_of(reviewed))
    assert shown.exit_code == 0, shown.output
    assert "review queue: 1 field, oldest waiting 0m" in shown.output
    summary = json.loads(ocrd("status", "--json", "--db", url_of(reviewed)).output)
    assert summary["review_queue"] == 1 and summary["review_age_seconds"] < 600
    assert summary["oldest_review"].startswith("20")


def test_status_with_an_empty_queue(store) -> None:  # noqa: ANN001
    shown = ocrd("status", "--db", url_of(store))
    assert "review queue: 0 fields" in shown.output
    assert json.loads(ocrd("status", "--json", "--db", url_of(store)).output)["review_queue"] == 0


def test_review_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCRD_ACCEPT_CONFIDENCE", "1.5")
    with pytest.raises(ConfigError, match="accept_confidence.*between 0 and 1"):
        load_settings()
    monkeypatch.setenv("OCRD_ACCEPT_CONFIDENCE", "0.75")
    monkeypatch.setenv("OCRD_REVIEW_PORT", "8999")
    settings = load_settings()
    assert (settings.accept_confidence, settings.review_port) == (0.75, 8999)


def test_review_refuses_a_public_address_without_token(sqlite_url: str) -> None:
    refused = ocrd("review", "--host", "0.0.0.0", "--db", sqlite_url)
    assert refused.exit_code == 2
    assert "needs a token: set OCRD_REVIEW_TOKEN" in refused.output


def test_review_command_serves_the_page(sqlite_url: str, tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ocrd", "review", "--port", str(port), "--db", sqlite_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/queue", timeout=2) as r:
                    assert json.load(r) == {"count": 0, "items": []}
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "ocrd review did not start"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/queue", timeout=5) as page:
            assert "Nothing waiting for review" in page.read().decode()
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"review page on http://127.0.0.1:{port}/" in output


def test_daemon_serves_the_review_page_when_review_port_is_set(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_daemon import Watcher, folders

    root = folders(tmp_path)
    port = _free_port()
    monkeypatch.setenv("OCRD_REVIEW_PORT", str(port))
    watcher = Watcher(tmp_path, "reviewing", root / "inbox", sqlite_url)
    try:
        watcher.wait_ready()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/queue", timeout=10) as r:
            assert json.load(r) == {"count": 0, "items": []}
    finally:
        code = watcher.stop()
    assert code == 0, watcher.log()
    assert f"review page on http://127.0.0.1:{port}/" in watcher.log()
