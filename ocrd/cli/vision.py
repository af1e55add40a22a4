"""Vision commands: `ocrd read` (quick check, no database) and `ocrd inspect` (overlay image)."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ocrd.cli.app import OcrdError, app
from ocrd.types import BadInputError, FieldReading

if TYPE_CHECKING:
    from ocrd.recognition import Recognizer
    from ocrd.types import Box, Field, Page

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


OVERLAY_IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
OVERLAY_TYPES = (*OVERLAY_IMAGE_TYPES, ".pdf")

# BGR colours of the overlay, and what each means (drawn as the legend).
HIGH, MEDIUM, LOW = (0, 160, 0), (0, 140, 255), (0, 0, 220)
VISION_ONLY, REVIEW = (150, 150, 150), (200, 0, 200)
LEGEND = (
    (HIGH, "confidence >= 0.90"),
    (MEDIUM, ">= 0.50"),
    (LOW, "< 0.50"),
    (VISION_ONLY, "found, not read"),
    (REVIEW, "? outer frame: needs review"),
)


def overlay_suffix(out: Path) -> str:
    """The --out type, or a one-line error naming the types that work."""
    suffix = out.suffix.lower()
    if suffix not in OVERLAY_TYPES:
        what = f"'{out.suffix}' files" if out.suffix else "a name without an extension"
        raise OcrdError(
            f"--out {out}: cannot write {what}; use {', '.join(OVERLAY_TYPES)} "
            "(.pdf: one page per overlay)"
        )
    return suffix


def _page_choice(value: str) -> int | None:
    """``--page``: a 1-based number, or ``all`` (None)."""
    if value.strip().lower() == "all":
        return None
    if value.strip().isdigit() and int(value) >= 1:
        return int(value)
    raise OcrdError(f"--page {value}: give a page number (1, 2, ...) or 'all'")


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="Image or PDF file to inspect.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Where to write the overlay: .png, .jpg, .tif, .bmp, .webp, or .pdf. With "
            "--page all an image name gets one file per page (out-1.png, out-2.png...), a .pdf "
            "one page per page.",
        ),
    ],
    page_choice: Annotated[
        str, typer.Option("--page", metavar="N|all", help="Page to draw (1-based), or all.")
    ] = "1",
    fields_only: Annotated[
        bool,
        typer.Option("--fields-only", help="Draw the fields vision found, without reading them."),
    ] = False,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    pdf_dpi: PdfDpiOption = 300,
    input_kind: InputKindOption = InputKind.AUTO,
) -> None:
    """Draw every field's box, text and confidence on a page of FILE and write it to --out,
    to see what was read and where.

    Box colours follow the confidence (green, orange, red; grey: found but not read); a
    magenta outer frame and a leading ? mark a field that needs review. A legend is drawn
    below the page.
    """
    from ocrd.pipeline import extract_fields, read_fields

    suffix = overlay_suffix(out)
    wanted = _page_choice(page_choice)
    _check_paths([file])
    recognizer = None if fields_only else _load_recognizer()
    overlays: list[tuple[int, np.ndarray, int]] = []
    try:
        pages = extract_fields(
            file, max_pixels=max_pixels, pdf_dpi=pdf_dpi, input_kind=input_kind.value
        )
        for page, fields in pages:
            if wanted is not None and page.number != wanted:
                continue
            readings = [None] * len(fields) if fields_only else read_fields(fields, recognizer)
            shown = sum(1 for r in readings if fields_only or r is not None)
            overlays.append((page.number, draw_overlay(page, fields, readings), shown))
            if wanted is not None:
                break
    except BadInputError as exc:
        typer.echo(f"ocrd: {file}: {exc}", err=True)
        raise typer.Exit(BAD_FILE_EXIT) from None
    if not overlays:
        raise OcrdError(f"{file} has no page {wanted}")
    for target, numbers, fields in write_overlays(out, suffix, overlays, all_pages=wanted is None):
        pages = ", ".join(str(n) for n in numbers)
        typer.echo(f"{target}: page{'s' if len(numbers) > 1 else ''} {pages}, {fields} field(s)")


def write_overlays(
    out: Path, suffix: str, overlays: list[tuple[int, np.ndarray, int]], *, all_pages: bool
) -> list[tuple[Path, list[int], int]]:
    """Write the overlays: one PDF holding every page, or one image per page (``out-N.png``
    when all pages were asked for). Returns (file, page numbers, field count) per file."""
    if suffix == ".pdf":
        from PIL import Image

        images = [Image.fromarray(image[..., ::-1]) for _, image, _ in overlays]
        try:
            images[0].save(out, format="PDF", save_all=True, append_images=images[1:])
        except OSError as exc:
            raise OcrdError(f"cannot write {out}: {exc.strerror or exc}") from None
        return [(out, [n for n, _, _ in overlays], sum(f for _, _, f in overlays))]
    import cv2

    written = []
    for number, image, fields in overlays:
        target = out.with_name(f"{out.stem}-{number}{out.suffix}") if all_pages else out
        try:
            ok = cv2.imwrite(str(target), image)
        except cv2.error:
            ok = False
        if not ok:
            raise OcrdError(f"cannot write {target} (check the folder exists and is writable)")
        written.append((target, [number], fields))
    return written


def draw_overlay(
    page: Page, fields: list[Field], readings: list[FieldReading | None]
) -> np.ndarray:
    """The page in colour with each field's box and 'text confidence' label (on a white
    patch clear of the box line), a frame around fields that need review, and the legend in a
    band below the page (page pixels keep their coordinates)."""
    import cv2

    canvas = cv2.cvtColor(page.image, cv2.COLOR_GRAY2BGR)
    unit = max(1.0, max(page.image.shape) / 1500)  # ~1 at 150 dpi A4
    thickness = max(1, int(round(2 * unit)))
    for field, reading in zip(fields, readings, strict=True):
        box = field.box
        if reading is None:
            colour, label = VISION_ONLY, field.layout
        else:
            colour = _confidence_colour(reading.confidence)
            label = f"{reading.text} {reading.confidence:.2f}"
            if reading.needs_review:
                label = f"? {label}"
                pad = 3 * thickness
                outer = ((box.x - pad, box.y - pad), (box.x + box.w + pad, box.y + box.h + pad))
                cv2.rectangle(canvas, *outer, REVIEW, thickness)
        cv2.rectangle(canvas, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, thickness)
        _draw_label(canvas, label, box, colour, unit, thickness)
    return np.vstack([canvas, _legend(canvas.shape[1], unit, thickness)])


def label_rect(
    box: Box, text_size: tuple[int, int], baseline: int, clearance: int, page: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Where a label goes: (x0, y0, x1, y1) of its patch, above the box with ``clearance``
    pixels between the patch and the box's outer edge, or below it when there is no room
    above; kept inside the page (height, width)."""
    width, height = text_size[0] + 4, text_size[1] + baseline + 4
    page_h, page_w = page
    x0 = min(max(0, box.x), max(0, page_w - width))
    y1 = box.y - clearance
    if y1 - height < 0:  # no room above: below the box
        y0 = box.y + box.h + clearance
        return x0, y0, x0 + width, y0 + height
    return x0, y1 - height, x0 + width, y1


def _draw_label(
    canvas: np.ndarray, label: str, box: Box, colour: tuple, unit: float, thickness: int
) -> None:
    import cv2

    scale = 0.5 * unit
    (w, h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    clearance = 4 * thickness + int(2 * unit)  # past the box line and any review frame
    x0, y0, x1, y1 = label_rect(box, (w, h), baseline, clearance, canvas.shape[:2])
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (255, 255, 255), cv2.FILLED)
    origin = (x0 + 2, y1 - baseline - 2)
    cv2.putText(canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness)


def _legend(width: int, unit: float, thickness: int) -> np.ndarray:
    """A white band with a colour swatch and the meaning of each overlay colour."""
    import cv2

    scale, row_h = 0.5 * unit, int(28 * unit)
    band = np.full((row_h, width, 3), 255, np.uint8)
    band[0, :] = VISION_ONLY  # where the page ends
    x = int(8 * unit)
    for colour, meaning in LEGEND:
        (w, h), _ = cv2.getTextSize(meaning, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        if x + int(24 * unit) + w > width:  # narrow page: as many as fit
            break
        top = (row_h - int(14 * unit)) // 2
        cv2.rectangle(band, (x, top), (x + int(14 * unit), top + int(14 * unit)), colour, -1)
        x += int(20 * unit)
        cv2.putText(band, meaning, (x, (row_h + h) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (40, 40, 40), max(1, thickness // 2))  # fmt: skip
        x += w + int(18 * unit)
    return band


def _confidence_colour(confidence: float) -> tuple[int, int, int]:
    if confidence >= 0.9:
        return HIGH
    if confidence >= 0.5:
        return MEDIUM
    return LOW
