"""The typer application shared by every command module, the options every database command
takes, and the one place where expected failures become ``ocrd: error: <one line>`` + exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ocrd.config import ConfigError, Settings, load_settings

USAGE_ERROR_EXIT = 2


class OcrdError(Exception):
    """Bad input from the user (unknown time, missing path...): one line, exit 2."""


def _expected_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import OperationalError

    from ocrd.store import StoreError

    return (OcrdError, ConfigError, StoreError, OperationalError)


def error_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's exception
    text = str(orig if orig is not None else exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return f"database error: {line}" if orig is not None else line


class OcrdGroup(TyperGroup):
    """Turns expected failures from any command into one line on stderr and exit 2 (also when
    the app is invoked through typer's CliRunner, which bypasses ``main()``)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _expected_errors() as exc:
            typer.echo(f"ocrd: error: {error_message(exc)}", err=True)
            raise typer.Exit(USAGE_ERROR_EXIT) from None


app = typer.Typer(
    name="ocrd",
    cls=OcrdGroup,
    help="Batch OCR daemon for folders of scanned forms: finds digit fields, reads them, "
    "stores every result with its confidence and box.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options shared by every command that uses the database or the settings.
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///path.db, postgresql://user@host/db) or a SQLite file path. "
        "(env OCRD_DATABASE_URL; default: SQLite ./ocrd.db)",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML settings file (env OCRD_CONFIG; default: /etc/ocrd/ocrd.toml if present).",
        dir_okay=False,
        show_default=False,
    ),
]


def cli_settings(config: Path | None = None, **flags: object) -> Settings:
    """Effective settings for a command: its flags (None = not given) over env, file, defaults."""
    return load_settings(flags, config_file=config)
