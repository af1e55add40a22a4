"""Effective settings for every ocrd command and the daemon.

One precedence order, highest first:
    CLI flag (``overrides``) > ``OCRD_<NAME>`` environment variable >
    TOML file (``--config`` / ``OCRD_CONFIG`` / ``/etc/ocrd/ocrd.toml``) > defaults.

TOML keys are the setting names, flat at the top level or inside an ``[ocrd]`` table.
Lists in environment variables are comma-separated. Relative paths from flags and the
environment are resolved against the current directory, relative paths in a config file
against that file's directory, so the daemon and the CLI always agree on absolute paths.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SYSTEM_CONFIG = Path("/etc/ocrd/ocrd.toml")
ENV_PREFIX = "OCRD_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_IGNORE = [".*", "*~", "*.tmp", "*.part", "*.crdownload", "*.swp"]


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting and its source."""


def _default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Settings:
    database_url: str = ""
    inbox: Path = Path("inbox")
    processed: Path = Path("processed")
    failed: Path = Path("failed")
    polling: bool = False  # poll the inbox instead of inotify (network file systems)
    recursive: bool = True  # watch / process sub-folders too
    ignore: list[str] = field(default_factory=lambda: list(DEFAULT_IGNORE))  # glob patterns
    settle_seconds: float = 1.0  # a file must be unchanged this long before it is read
    rescan_seconds: float = 30.0  # full inbox rescan interval (missed events, restarts)
    duplicates: str = "skip"  # "skip" | "reprocess" content that was already read
    on_done: str = "move"  # "move" to processed/YYYY/MM/DD | "delete"
    max_batch: int = 256  # digit crops per model call
    max_delay_ms: int = 20  # longest wait to fill a batch
    workers: int = field(default_factory=_default_workers)
    max_pixels: int = 200_000_000  # larger pages are rejected (decompression bombs)
    pdf_dpi: int = 300
    input_kind: str = "auto"  # what files hold: auto | page (forms) | field | digit
    max_pages: int = 1000  # documents with more pages fail with the reason (0 = no cap)
    memory_budget_mb: int = 1024  # pages being decoded/read at once must fit (2 GB service)
    symlinks: str = "refuse"  # "refuse" (to failed/) | "inside-inbox" (follow links into it)
    log_level: str = "INFO"
    metrics_port: int = 0  # 0 = no metrics endpoint
    review_port: int = 0  # the review page (`ocrd review`, and the daemon when not 0)
    # Fields less sure than this go to the review queue (None: the calibrated threshold of
    # each kind of field, `ocrd/models/calibration.json`).
    accept_confidence: float | None = None
    worker_id: str = field(default_factory=_default_worker_id)
    templates_dir: Path = Path("templates")  # form templates (*.toml); reloaded on SIGHUP
    # name -> "flag" | "env" | "file:<path>" | "default"
    sources: dict[str, str] = field(default_factory=dict, compare=False)


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings) if f.name != "sources")
PATH_SETTINGS = ("inbox", "processed", "failed", "templates_dir")


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _parse_int(value: object) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(str(value).strip()) if isinstance(value, str) else int(value)  # type: ignore[arg-type]


def _parse_float(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _parse_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    raise ValueError(f"expected a list of strings, got {value!r}")


def _choice(*allowed: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return text

    return parse


def _parse_log_level(value: object) -> str:
    text = str(value).strip().upper()
    if text not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return text


def _non_negative(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    def checked(value: object) -> Any:
        number = parse(value)
        if number < 0:
            raise ValueError(f"must not be negative, got {value!r}")
        return number

    return checked


def _positive_int(value: object) -> int:
    number = _parse_int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {value!r}")
    return number


def _fraction(value: object) -> float:
    number = _parse_float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value!r}")
    return number


PARSERS: dict[str, Callable[[object], Any]] = {
    "database_url": lambda v: str(v).strip(),
    "inbox": lambda v: Path(str(v)).expanduser(),
    "processed": lambda v: Path(str(v)).expanduser(),
    "failed": lambda v: Path(str(v)).expanduser(),
    "polling": _parse_bool,
    "recursive": _parse_bool,
    "ignore": _parse_list,
    "settle_seconds": _non_negative(_parse_float),
    "rescan_seconds": _non_negative(_parse_float),
    "duplicates": _choice("skip", "reprocess"),
    "on_done": _choice("move", "delete"),
    "max_batch": _positive_int,
    "max_delay_ms": _non_negative(_parse_int),
    "workers": _positive_int,
    "max_pixels": _positive_int,
    "pdf_dpi": _positive_int,
    "input_kind": _choice("auto", "page", "field", "digit"),
    "max_pages": _non_negative(_parse_int),
    "memory_budget_mb": _positive_int,
    "symlinks": _choice("refuse", "inside-inbox"),
    "log_level": _parse_log_level,
    "metrics_port": _non_negative(_parse_int),
    "review_port": _non_negative(_parse_int),
    "accept_confidence": _fraction,
    "worker_id": lambda v: str(v).strip(),
    "templates_dir": lambda v: Path(str(v)).expanduser(),
}


def config_file_path(config_file: Path | None = None) -> tuple[Path | None, bool]:
    """The config file to read and whether it was asked for explicitly (then it must exist)."""
    if config_file is not None:
        return Path(config_file).expanduser(), True
    from_env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if from_env:
        return Path(from_env).expanduser(), True
    return (SYSTEM_CONFIG, False) if SYSTEM_CONFIG.is_file() else (None, False)


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    table = data.pop("ocrd", {})
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [ocrd] must be a table")
    merged = {**data, **table}
    unknown = sorted(set(merged) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(SETTING_NAMES)})"
        )
    return merged


def _absolute_sqlite_url(url: str, base: Path) -> str:
    """Make relative SQLite paths absolute (so every process opens the same file); a bare
    path without ``://`` is taken as a SQLite file. A libpq ``key=value`` string and a URL
    that does not parse are refused with a one-line reason that never shows the password."""
    from ocrd.store.urls import DatabaseUrlError, looks_like_conninfo, mask_url, parse_database_url

    if looks_like_conninfo(url):
        raise ConfigError(
            f"database_url: {mask_url(url)!r} is a libpq key=value string; write it as a URL: "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        )
    if "://" not in url:
        return f"sqlite:///{(base / Path(url).expanduser()).resolve()}"
    try:
        parsed = parse_database_url(url)
    except DatabaseUrlError as exc:
        raise ConfigError(f"database_url: {exc}") from None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url  # as written: parse_database_url reads it the same way every time
    if database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str((base / database).resolve())).render_as_string(
        hide_password=False
    )


def load_settings(
    overrides: Mapping[str, object] | None = None, config_file: Path | None = None
) -> Settings:
    """Effective settings. ``overrides`` are CLI flags (``None`` values mean "not given")."""
    cwd = Path.cwd()
    raw: dict[str, tuple[object, str, Path]] = {}  # name -> (value, source, base directory)

    path, _ = config_file_path(config_file)
    if path is not None:
        for name, value in _read_toml(path).items():
            raw[name] = (value, f"file:{path}", path.parent.resolve())
    for name in SETTING_NAMES:
        env_value = os.environ.get(ENV_PREFIX + name.upper())
        if env_value is not None and env_value != "":
            raw[name] = (env_value, "env", cwd)
    for name, value in (overrides or {}).items():
        if name not in SETTING_NAMES:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            raw[name] = (value, "flag", cwd)

    settings = Settings()
    sources = {name: "default" for name in SETTING_NAMES}
    for name, (value, source, base) in raw.items():
        try:
            parsed = PARSERS[name](value)
        except (TypeError, ValueError) as exc:
            where = {"flag": "command line", "env": ENV_PREFIX + name.upper()}.get(source, source)
            raise ConfigError(f"{name} ({where}): {exc}") from None
        if name in PATH_SETTINGS:
            parsed = (base / parsed).resolve()
        elif name == "database_url":
            parsed = _absolute_sqlite_url(parsed, base) if parsed else ""
        setattr(settings, name, parsed)
        sources[name] = source

    _fill_defaults(settings, sources, cwd)
    settings.sources = sources
    return settings


def _fill_defaults(settings: Settings, sources: dict[str, str], cwd: Path) -> None:
    if sources["inbox"] == "default":
        settings.inbox = (cwd / settings.inbox).resolve()
    if sources["templates_dir"] == "default":
        settings.templates_dir = (cwd / settings.templates_dir).resolve()
    for sibling in ("processed", "failed"):
        if sources[sibling] == "default":  # siblings of the inbox, wherever it is
            setattr(settings, sibling, settings.inbox.parent / sibling)
    if not settings.database_url:
        settings.database_url = f"sqlite:///{(cwd / 'ocrd.db').resolve()}"
        sources["database_url"] = "default"


def settings_as_dict(settings: Settings) -> dict[str, object]:
    """JSON-ready values (paths as strings) for ``ocrd config --json``."""
    out: dict[str, object] = {}
    for name in SETTING_NAMES:
        value = getattr(settings, name)
        out[name] = str(value) if isinstance(value, Path) else value
    return out
