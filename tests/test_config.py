"""Settings precedence: CLI flag > OCRD_* environment > TOML file > defaults, with sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ocrd.cli import app
from ocrd.config import ConfigError, load_settings


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_absolute_and_beside_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.inbox == tmp_path / "inbox"
    assert settings.processed == tmp_path / "processed"
    assert settings.failed == tmp_path / "failed"
    assert settings.database_url == f"sqlite:///{tmp_path / 'ocrd.db'}"
    assert settings.duplicates == "skip" and settings.on_done == "move"
    assert 1 <= settings.workers <= 4
    assert ":" in settings.worker_id
    assert set(settings.sources.values()) == {"default"}


def test_flag_beats_env_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_toml(
        tmp_path / "ocrd.toml",
        'max_batch = 64\nmax_delay_ms = 5\nlog_level = "debug"\n',
    )
    monkeypatch.setenv("OCRD_MAX_DELAY_MS", "7")
    monkeypatch.setenv("OCRD_LOG_LEVEL", "warning")
    settings = load_settings({"log_level": "error", "max_batch": None}, config_file=config)

    assert settings.max_batch == 64 and settings.sources["max_batch"] == f"file:{config}"
    assert settings.max_delay_ms == 7 and settings.sources["max_delay_ms"] == "env"
    assert settings.log_level == "ERROR" and settings.sources["log_level"] == "flag"
    assert settings.pdf_dpi == 300 and settings.sources["pdf_dpi"] == "default"


def test_config_file_from_env_with_ocrd_table_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    config = write_toml(
        etc / "ocrd.toml",
        '[ocrd]\ninbox = "drop"\ndatabase_url = "sqlite:///state/ocrd.db"\n'
        'ignore = ["*.tmp", "~*"]\npolling = true\n',
    )
    monkeypatch.setenv("OCRD_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    # paths in a file are relative to the file; processed/failed follow the inbox
    assert settings.inbox == etc / "drop"
    assert settings.processed == etc / "processed" and settings.failed == etc / "failed"
    assert settings.database_url == f"sqlite:///{etc / 'state' / 'ocrd.db'}"
    assert settings.ignore == ["*.tmp", "~*"]
    assert settings.polling is True


def test_env_values_are_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCRD_IGNORE", "*.bak, .~lock*")
    monkeypatch.setenv("OCRD_RECURSIVE", "no")
    monkeypatch.setenv("OCRD_SETTLE_SECONDS", "2.5")
    monkeypatch.setenv("OCRD_DATABASE_URL", "data/x.db")  # a bare path is a SQLite file
    monkeypatch.setenv("OCRD_INBOX", "in")
    settings = load_settings({"duplicates": "REPROCESS"})
    assert settings.ignore == ["*.bak", ".~lock*"]
    assert settings.recursive is False
    assert settings.settle_seconds == 2.5
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'x.db'}"
    assert settings.inbox == tmp_path / "in" and settings.processed == tmp_path / "processed"
    assert settings.duplicates == "reprocess"


def test_postgres_url_is_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://ocrd:pw@db.example:5432/ocrd"
    monkeypatch.setenv("OCRD_DATABASE_URL", url)
    assert load_settings().database_url == url


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("workers", "zero", "workers"),
        ("workers", "0", "at least 1"),
        ("duplicates", "sometimes", "skip, reprocess"),
        ("polling", "maybe", "true/false"),
        ("log_level", "loud", "DEBUG"),
        ("settle_seconds", "-1", "negative"),
    ],
)
def test_bad_values_name_the_setting_and_source(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"OCRD_{name.upper()}", value)
    with pytest.raises(ConfigError, match=message) as error:
        load_settings()
    assert name in str(error.value) and f"OCRD_{name.upper()}" in str(error.value)


def test_config_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=write_toml(tmp_path / "bad.toml", "inbox = \n"))
    with pytest.raises(ConfigError, match="unknown setting.*inbx"):
        load_settings(config_file=write_toml(tmp_path / "typo.toml", 'inbx = "x"\n'))


def test_ocrd_config_command_shows_values_and_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_toml(tmp_path / "c.toml", "max_batch = 32\n")
    monkeypatch.setenv("OCRD_WORKERS", "3")
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["config", "--json", "--config", str(config), "--db", "postgresql://u:secret@h/db"],
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["max_batch"] == {"value": 32, "source": f"file:{config}"}
    assert shown["workers"] == {"value": 3, "source": "env"}
    assert shown["database_url"]["source"] == "flag"
    assert "secret" not in shown["database_url"]["value"]  # passwords are masked
    assert shown["inbox"] == {"value": str(tmp_path / "inbox"), "source": "default"}

    table = runner.invoke(app, ["config", "--config", str(config)])
    assert table.exit_code == 0
    assert "max_batch" in table.stdout and f"file:{config}" in table.stdout
    assert shown["accept_confidence"]["value"] is None  # no setting: the calibrated ones
    assert "field images" in table.stdout

    bad = runner.invoke(app, ["config", "--config", str(tmp_path / "nope.toml")])
    assert bad.exit_code == 2
    assert bad.stderr.strip().startswith("ocrd: error:") and len(bad.stderr.splitlines()) == 1


def test_system_config_file_is_read_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ocrd import config

    system = write_toml(tmp_path / "ocrd.toml", 'on_done = "delete"\n')
    monkeypatch.setattr(config, "SYSTEM_CONFIG", system)
    settings = load_settings()
    assert settings.on_done == "delete" and settings.sources["on_done"] == f"file:{system}"
    explicit = write_toml(tmp_path / "other.toml", "pdf_dpi = 200\n")
    chosen = load_settings(config_file=explicit)  # --config replaces the system file
    assert chosen.on_done == "move" and chosen.pdf_dpi == 200
