"""The typer application object shared by every command module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="ocrd",
    help="Batch OCR daemon for folders of scanned forms: finds digit fields, reads them, "
    "stores every result with its confidence and box.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
