"""Bad days with the database: URLs that do not parse, a --db that is not a database, secrets
in every form of URL, and a PostgreSQL outage under a running daemon (one warning, one line
when it is back, no flood, nothing lost)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrd.config import ConfigError, load_settings
from ocrd.store.urls import DatabaseUrlError, mask_url, parse_database_url
from tests.test_daemon import (
    Watcher,
    count_status,
    documents_by_name,
    folders,
    make_burst,
    wait_for,
)

SECRET = "s3cret"


def ocrd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrd", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


def assert_one_line_exit_2(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2 and lines, done.stderr  # watch also logs it (issue 14 item 7)
    for text in expected:
        assert text in done.stderr, done.stderr
    assert SECRET not in done.stderr + done.stdout


# --- parsing and masking --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{SECRET}@db:5432/ocrd", "postgresql://u:***@db:5432/ocrd"),
        (f"postgresql://u:p@{SECRET}@db/ocrd", "postgresql://u:***@db/ocrd"),
        (
            f"postgresql://u@db/ocrd?sslmode=require&password={SECRET}",
            "postgresql://u@db/ocrd?sslmode=require&password=***",
        ),
        (
            f"host=db user=u password={SECRET} dbname=ocrd",
            "host=db user=u password=*** dbname=ocrd",
        ),
        (f"postgresql://u:{SECRET}@db:notaport/ocrd", "postgresql://u:***@db:notaport/ocrd"),
    ],
)
def test_every_form_of_password_is_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_password_with_an_unencoded_at_sign_runs_to_the_last_at() -> None:
    parsed = parse_database_url("postgresql://u:p@ss@db.example:5433/ocrd")
    assert (parsed.username, parsed.password, parsed.host, parsed.port) == (
        "u", "p@ss", "db.example", 5433,
    )  # fmt: skip
    assert parsed.database == "ocrd"


def test_bad_port_and_libpq_strings_are_refused_in_one_masked_line() -> None:
    with pytest.raises(DatabaseUrlError, match="port 'notaport' is not a number") as caught:
        parse_database_url(f"postgresql://u:{SECRET}@127.0.0.1:notaport/db")
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match="libpq key=value string; write it as a URL") as caught:
        load_settings({"database_url": f"host=127.0.0.1 user=u password={SECRET} dbname=db"})
    assert SECRET not in str(caught.value)


# --- the commands -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["results"], ["watch", "{inbox}"]])
def test_non_numeric_port_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    args = [part.format(inbox=tmp_path / "inbox") for part in command]
    done = ocrd(*args, "--db", f"postgresql://u:{SECRET}@127.0.0.1:notaport/db")
    assert_one_line_exit_2(done, "port 'notaport' is not a number", "127.0.0.1:5432")


@pytest.mark.parametrize("command", [["status"], ["results"], ["watch", "{inbox}"]])
def test_db_that_is_not_a_database_is_one_line_and_exit_2(
    command: list[str], tmp_path: Path
) -> None:
    (tmp_path / "inbox").mkdir()
    notes = tmp_path / "notes.db"
    notes.write_text("shopping list\n" * 200)
    args = [part.format(inbox=tmp_path / "inbox") for part in command]
    done = ocrd(*args, "--db", str(notes))
    assert_one_line_exit_2(done, f"{notes} is not a usable database", "file is not a database")
    assert notes.read_text() == "shopping list\n" * 200  # untouched


def test_config_never_prints_a_password(tmp_path: Path) -> None:
    for url in (
        f"postgresql://u@127.0.0.1/db?password={SECRET}",
        f"postgresql://u:p@{SECRET}@127.0.0.1/db",
    ):
        done = ocrd("config", "--db", url)
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout and "***" in done.stdout
    done = ocrd("config", "--db", f"host=127.0.0.1 user=u password={SECRET}")
    assert_one_line_exit_2(done, "libpq key=value string")


def test_connection_errors_never_print_a_password(tmp_path: Path) -> None:
    done = ocrd("status", "--db", f"postgresql://u:{SECRET}@127.0.0.1:1/db")
    assert_one_line_exit_2(done, "cannot connect to database postgresql+psycopg://u:***@")


# --- a PostgreSQL outage under a running daemon ---------------------------------------------------


def test_postgresql_outage_logs_one_warning_and_one_recovery_line(
    tmp_path: Path,
    postgres_server,  # noqa: ANN001
    postgres_url: str,
) -> None:
    root = folders(tmp_path)
    inbox = root / "inbox"
    forms = make_burst(tmp_path / "staging", 3, seed=31)
    url = f"{postgres_url}?password={SECRET}"  # trust auth ignores it; it must not be shown
    watcher = Watcher(tmp_path, "outage", inbox, url)
    try:
        watcher.wait_ready()
        (inbox / forms[0].name).write_bytes(forms[0].read_bytes())
        wait_for(lambda: count_status(postgres_url, "done") == 1, 60, "first form not done")
        before = len(watcher.log().splitlines())
        postgres_server.pause()
        try:
            time.sleep(2)
            (inbox / forms[1].name).write_bytes(forms[1].read_bytes())  # dropped during it
            time.sleep(8)
        finally:
            postgres_server.resume()
        wait_for(lambda: count_status(postgres_url, "done") == 2, 40, "form dropped in outage")
        (inbox / forms[2].name).write_bytes(forms[2].read_bytes())
        wait_for(lambda: count_status(postgres_url, "done") == 3, 10, "normal form after it")
        assert watcher.process.poll() is None
    finally:
        assert watcher.stop() == 0, watcher.log()[-3000:]
    log = watcher.log()
    during = log.splitlines()[before:]
    assert log.count("database unavailable") == 1, during
    assert log.count("database is back after") == 1, during
    assert "Traceback" not in log
    assert len(during) < 15, during  # was 138,559 lines for a 21 s outage
    assert SECRET not in log
    rows = documents_by_name(postgres_url)
    assert all(len(rows[f.name]) == 1 for f in forms)  # nothing read twice
    assert not any(inbox.iterdir())
