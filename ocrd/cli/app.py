"""The typer application shared by every command module, the options every database command
takes, and the one place where expected failures become ``ocrd: error: <one line>`` + exit 2."""

from __future__ import annotations

import inspect
import json
import typing
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


def _paragraphs(text: str) -> str:
    """Help text as paragraphs: a docstring's line breaks inside a paragraph become spaces
    (typer keeps them after the first paragraph); a paragraph starting with \\b stays as is."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split()) for p in paragraphs)


def _metavar(param: Any) -> str:
    """What help shows for a value: nothing for a flag, the choices, or a plain word (FILE, N,
    TEXT) instead of typer's ``<bool>`` / ``<list[str]>`` type names. Duck-typed: newer typer
    vendors click and describes types with a ``type_descriptor``, older typer uses click's."""
    if getattr(param, "is_flag", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is not None:
        choices, annotation = desc.choices, desc.annotation
        is_path = desc.is_path or desc.is_file
        args = typing.get_args(annotation)
        if desc.is_list and len(args) == 1:
            annotation = args[0]
    else:
        kind = param.type
        choices, is_path = getattr(kind, "choices", None), hasattr(kind, "dir_okay")
        annotation = {"integer": int, "float": float}.get(getattr(kind, "name", "")[:7].strip())
    if choices:
        return "|".join(str(getattr(choice, "value", choice)) for choice in choices)
    if is_path:
        return "PATH"
    if isinstance(annotation, type) and issubclass(annotation, int):
        return "N"
    if isinstance(annotation, type) and issubclass(annotation, float):
        return "X"
    return "TEXT"


def _no_type(ctx: Any) -> None:
    return None


def _flag_help_option(get_help_option: Any) -> Any:
    def wrapped(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""  # --help is a flag: no "<bool>"
        return option

    return wrapped


def tidy_help(command: Any) -> None:
    """One style for every command's help (applied to the whole tree once it is built):
    paragraphs without stray line breaks, FILES / N / TEXT instead of type names."""
    if command.help:
        command.help = _paragraphs(command.help)
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument":
            param.metavar = param.metavar or param.name.upper()
            if hasattr(param, "display_type_rich"):  # the name says it; no "<list[Path]>"
                param.display_type_rich = _no_type
        elif param.metavar is None:
            param.metavar = _metavar(param)
    if hasattr(command, "get_help_option"):
        command.get_help_option = _flag_help_option(command.get_help_option)
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


class OcrdGroup(TyperGroup):
    """Turns expected failures from any command into one line on stderr and exit 2 (also when
    the app is invoked through typer's CliRunner, which bypasses ``main()``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tidy_help(self)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _expected_errors() as exc:
            typer.echo(f"ocrd: error: {error_message(exc)}", err=True)
            raise typer.Exit(USAGE_ERROR_EXIT) from None


app = typer.Typer(
    name="ocrd",
    cls=OcrdGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version_line() -> str:
    """``ocrd <package version> (models digits@X, lines@Y)`` from the package and the model
    manifest alone: no TensorFlow import, so it answers at once."""
    from ocrd import __version__, models

    try:
        manifest = Path(models.__file__).with_name("manifest.json")
        entries = json.loads(manifest.read_text())["models"]
        models = ", ".join(f"{e['name']}@{e['version']}" for e in entries.values())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        models = f"model manifest unreadable: {exc}"
    return f"ocrd {__version__} (models {models})"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the package and model versions and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Batch OCR daemon for folders of scanned forms: finds digit fields, reads them, stores
    every result with its confidence and box.

    Start with `ocrd read FILE` (no database), run the daemon with `ocrd watch`, query with
    `ocrd results` and `ocrd show FILE`. Every command has --help.
    """


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
