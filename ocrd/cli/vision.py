"""Vision commands: `ocrd read` (quick check, no database) and `ocrd inspect` (overlay image)."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ocrd.cli.app import OcrdError, app
from ocrd.types import BadInputError, FieldReading

if TYPE_CHECKING:
    import numpy as np

    from ocrd.recognition import Recognizer
    from ocrd.types import Field, Page

DEFAULT_MAX_PIXELS = 200_000_000
BAD_FILE_EXIT = 1

MaxPixelsOption = Annotated[
    int,
    typer.Option("--max-pixels", help="Refuse pages larger than this many pixels.", min=1),
]
PdfDpiOption = Annotated[
    int, typer.Option("--pdf-dpi", help="Resolution PDF pages are rendered at.", min=50, max=1200)
]



class InputKind(enum.StrEnum):
    AUTO = "auto"
    PAGE = "page"
    FIELD = "field"
    DIGIT = "digit"


InputKindOption = Annotated[
    InputKind,
    typer.Option(
        "--input-kind",
        help="What the files hold: auto (decided from the content), page (a form), "
        "field (one written number, e.g. a cheque amount) or digit.",
    ),
]


def _load_recognizer() -> Recognizer:
    from ocrd.recognition import load_recognizer

    try:
        return load_recognizer()
    except Exception as exc:  # missing or tampered weights, TensorFlow import problems
        raise OcrdError(f"cannot load the recognition models: {exc}") from exc


def _check_paths(paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            raise OcrdError(f"{path}: no such file or directory")


def _field_json(path: Path, reading: FieldReading) -> str:
    return json.dumps(
        {
            "file": str(path),
            "page": reading.page,
            "text": reading.text,
            "confidence": round(reading.confidence, 4),
            "kind": reading.kind,
            "box": reading.box.as_list(),
            "model": reading.model,
            "digits": [d.as_dict() for d in reading.digits],
        }
    )


@app.command()
def read(
    files: Annotated[list[Path], typer.Argument(help="Image or PDF files to read.")],
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per field instead of a table.")
    ] = False,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    pdf_dpi: PdfDpiOption = 300,
    input_kind: InputKindOption = InputKind.AUTO,
) -> None:
    """Print what is read from FILES (text, confidence, kind, box per field) without touching
    the database: the quick check before pointing the daemon at a folder.

    Unreadable files get a one-line reason on stderr and exit status 1; a missing path, 2.
    """
    from ocrd.pipeline import read_document
    from ocrd.vision import sniff_media_type

    _check_paths(files)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 1000)
    table = Table("file", "page", "text", "confidence", "kind", "box (x, y, w, h)")
    recognizer = None
    failed = 0
    for path in files:
        try:
            sniff_media_type(path)  # cheap: fail bad files before loading the models
            recognizer = recognizer or _load_recognizer()
            document = read_document(
                path,
                recognizer,
                max_pixels=max_pixels,
                pdf_dpi=pdf_dpi,
                input_kind=input_kind.value,
            )
        except BadInputError as exc:
            typer.echo(f"ocrd: {path}: {exc}", err=True)
            failed += 1
            continue
        for reading in document.fields:
            if json_lines:
                typer.echo(_field_json(path, reading))
            else:
                box = ", ".join(str(v) for v in reading.box.as_list())
                table.add_row(
                    str(path),
                    str(reading.page),
                    reading.text,
                    f"{reading.confidence:.3f}",
                    reading.kind,
                    box,
                )
        if not document.fields and not json_lines:
            table.add_row(str(path), "-", "(no fields found)", "", "", "")
    if not json_lines and table.row_count:
        console.print(table)
    if failed:
        raise typer.Exit(BAD_FILE_EXIT)


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="Image or PDF file to inspect.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the overlay (PNG, JPEG...).")],
    page_number: Annotated[int, typer.Option("--page", help="Page to draw (1-based).", min=1)] = 1,
    fields_only: Annotated[
        bool,
        typer.Option("--fields-only", help="Draw the fields vision found, without reading them."),
    ] = False,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    pdf_dpi: PdfDpiOption = 300,
    input_kind: InputKindOption = InputKind.AUTO,
) -> None:
    """Draw every field's box, text and confidence on a page of FILE and write it to --out,
    to see what was read and where."""
    from ocrd.pipeline import extract_fields, read_fields

    _check_paths([file])
    try:
        found = None
        pages = extract_fields(
            file, max_pixels=max_pixels, pdf_dpi=pdf_dpi, input_kind=input_kind.value
        )
        for page, fields in pages:
            if page.number == page_number:
                found = (page, fields)
                break
    except BadInputError as exc:
        typer.echo(f"ocrd: {file}: {exc}", err=True)
        raise typer.Exit(BAD_FILE_EXIT) from None
    if found is None:
        raise OcrdError(f"{file} has no page {page_number}")
    page, fields = found
    readings = [None] * len(fields) if fields_only else read_fields(fields, _load_recognizer())
    overlay = draw_overlay(page, fields, readings)
    import cv2

    if not cv2.imwrite(str(out), overlay):
        raise OcrdError(f"cannot write {out} (unknown image extension or unwritable folder)")
    shown = sum(1 for f, r in zip(fields, readings, strict=True) if fields_only or r is not None)
    typer.echo(f"{out}: page {page.number}, {shown} field(s)")


def draw_overlay(
    page: Page, fields: list[Field], readings: list[FieldReading | None]
) -> np.ndarray:
    """The page in colour with each field's box and 'text confidence' label.

    Green: confidence >= 0.9, orange: >= 0.5, red: lower; grey: found by vision only
    (no reading, or judged not to be digits)."""
    import cv2

    canvas = cv2.cvtColor(page.image, cv2.COLOR_GRAY2BGR)
    unit = max(1.0, max(page.image.shape) / 1500)  # ~1 at 150 dpi A4
    for field, reading in zip(fields, readings, strict=True):
        box = field.box
        if reading is None:
            colour, label = (150, 150, 150), field.layout
        else:
            colour = _confidence_colour(reading.confidence)
            label = f"{reading.text} {reading.confidence:.2f}"
        thickness = max(1, int(round(2 * unit)))
        cv2.rectangle(canvas, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, thickness)
        origin = (box.x, max(int(14 * unit), box.y - int(4 * unit)))
        cv2.putText(canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * unit, colour, thickness)
    return canvas


def _confidence_colour(confidence: float) -> tuple[int, int, int]:
    if confidence >= 0.9:
        return (0, 160, 0)
    if confidence >= 0.5:
        return (0, 140, 255)
    return (0, 0, 220)
