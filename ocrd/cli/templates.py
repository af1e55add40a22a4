"""Template commands: ocrd template create | list | show | check."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ocrd.cli.app import ConfigOption, OcrdError, app, cli_settings

template_app = typer.Typer(
    help="Form templates: named fields, alignment and rules for a form you receive often.",
    no_args_is_help=True,
)
app.add_typer(template_app, name="template")

PageOption = Annotated[int, typer.Option("--page", min=1, help="Page of FILE to use.")]


def _templates_dir(config: Path | None) -> Path:
    return cli_settings(config).templates_dir


def _page(path: Path, number: int):  # noqa: ANN202 (ocrd.types.Page)
    from ocrd.types import BadInputError
    from ocrd.vision import iter_pages

    if not path.is_file():
        raise OcrdError(f"{path}: no such file")
    try:
        for page in iter_pages(path):
            if page.number == number:
                return page
    except BadInputError as exc:
        raise OcrdError(f"{path}: {exc}") from None
    raise OcrdError(f"{path}: has no page {number}")


def _template(name: str, config: Path | None):  # noqa: ANN202 (ocrd.templates.Template)
    from ocrd.templates import TemplateError, load_template

    directory = _templates_dir(config)
    path = directory / f"{name}.toml"
    if not path.is_file():
        raise OcrdError(f"no template {name!r} in {directory} (see `ocrd template list`)")
    try:
        return load_template(path)
    except TemplateError as exc:
        raise OcrdError(str(exc)) from None


@template_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Template name (the file is NAME.toml).")],
    file: Annotated[Path, typer.Argument(help="A blank or filled copy of the form.")],
    page: PageOption = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing template.")] = False,
    config: ConfigOption = None,
) -> None:
    """Make a template (templates_dir/NAME.toml) from a scan of the form.

    Finds the form's combs, boxes, underlines and written numbers. Edit the field names and
    rules in the file.

    Fields are named field_1, field_2, ... in reading order. Rules a field may have: length,
    min_length, max_length, pattern (regex), min, max, checksum (luhn/mod11/mod97), required.
    """
    from ocrd.templates import save_template
    from ocrd.templates.create import create_template
    from ocrd.templates.model import _NAME

    if not _NAME.match(name):
        raise OcrdError(f"template name {name!r}: use letters, digits, _ . -")
    target = _templates_dir(config) / f"{name}.toml"
    if target.exists() and not force:
        raise OcrdError(f"{target} exists (use --force to replace it)")
    try:
        template = create_template(name, _page(file, page), source=file)
    except ValueError as exc:
        raise OcrdError(f"{file}: {exc}") from None
    save_template(template, target)
    typer.echo(f"wrote {target}: {len(template.fields)} fields")
    for f in template.fields:
        cells = f" ({f.cells} cells)" if f.cells else ""
        typer.echo(f"  {f.name}: {f.layout}{cells} at {f.box.x},{f.box.y} {f.box.w}x{f.box.h}")
    typer.echo("edit the names and rules in the file; the daemon reloads templates on SIGHUP")


@template_app.command("list")
def list_templates(config: ConfigOption = None) -> None:
    """List the templates in templates_dir (a broken file is listed with its error)."""
    from ocrd.templates import TemplateError, load_template, template_files

    directory = _templates_dir(config)
    files = template_files(directory) if directory.is_dir() else []
    if not files:
        typer.echo(f"no templates in {directory}")
        return
    table = Table("name", "fields", "page", "file", header_style="bold")
    for path in files:
        try:
            t = load_template(path)
        except TemplateError as exc:
            table.add_row(path.stem, "-", "-", f"error: {exc}")
            continue
        table.add_row(t.name, ", ".join(t.field_names()), f"{t.width}x{t.height}", str(path))
    from ocrd.cli.store import _console

    _console().print(table)


@template_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Template name.")], config: ConfigOption = None
) -> None:
    """Show a template's fields, their boxes, their printed labels' boxes and rules."""
    from ocrd.cli.store import _console

    t = _template(name, config)
    typer.echo(f"{t.name}: {t.width}x{t.height} px at {t.dpi} dpi, from {t.source or '?'}")
    table = Table("field", "layout", "kind", "box", "label at", "rules", header_style="bold")
    for f in t.fields:
        rules = ", ".join(f"{k}={v}" for k, v in f.rules.as_dict().items())
        box = f"{f.box.x},{f.box.y} {f.box.w}x{f.box.h}"
        label = f"{f.label.x},{f.label.y} {f.label.w}x{f.label.h}" if f.label else ""
        layout = f"{f.layout} ({f.cells})" if f.cells else f.layout
        table.add_row(f.name, layout, f.kind, box, label, rules)
    _console().print(table)


@template_app.command("check")
def check(
    name: Annotated[str, typer.Argument(help="Template name.")],
    file: Annotated[Path, typer.Argument(help="A filled copy of the form.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the aligned page with the fields (PNG).")
    ] = None,
    page: PageOption = 1,
    config: ConfigOption = None,
) -> None:
    """Align a scan to the template, read it and check every field's rules.

    Exit status: 0 when every rule holds, 1 when a field breaks one or the page does not
    match the template, 2 for bad arguments.
    """
    import cv2

    from ocrd.cli.store import _console
    from ocrd.pipeline import read_fields
    from ocrd.recognition import load_recognizer
    from ocrd.templates import TemplateSet, match_page, name_pages
    from ocrd.templates.overlay import draw_overlay, verdict
    from ocrd.vision import find_fields

    template = _template(name, config)
    scan = dataclasses.replace(_page(file, page), reduced=1.0)  # drawn in the image's pixels
    matched, fields = match_page(scan, find_fields(scan), TemplateSet([template]))
    match = matched[0]
    if match is None:
        typer.echo(f"{file} page {page} does not match template {name}", err=True)
        raise typer.Exit(1)
    read = read_fields(fields, load_recognizer()) if fields else []
    named = name_pages([r for r in read if r is not None], {scan.number: matched})
    table = Table("field", "text", "conf", "verdict", header_style="bold")
    for r in named:
        if r.field_name:
            table.add_row(r.field_name, r.text, f"{r.confidence:.3f}", verdict(r))
    _console().print(table)
    typer.echo(f"matched {name} ({match.inliers} keypoints, rulings {match.ruling:.0%})")
    if out is not None:
        if not cv2.imwrite(str(out), draw_overlay(scan.image, match, named)):
            raise OcrdError(f"cannot write {out}")
        typer.echo(f"wrote {out}")
    if any(r.needs_review for r in named if r.field_name):
        raise typer.Exit(1)
