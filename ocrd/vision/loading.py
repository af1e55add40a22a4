"""Page loading: any supported file -> uint8 grayscale `Page`s, one at a time.

The type is sniffed from the file's content (magic bytes), never its extension. Every way a
file can be unreadable ends in one `BadInputError` with a one-line reason, so the caller can
store it and carry on. The pixel limit is checked from the header (or the PDF page size)
BEFORE anything is decoded, so a decompression bomb never allocates its pixels.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ocrd.types import BadInputError, Page

DEFAULT_MAX_PIXELS = 200_000_000
DEFAULT_PDF_DPI = 300

# We enforce our own (configurable) limit before decoding; Pillow's fixed one would reject
# legitimate large scans below our limit with a different message.
Image.MAX_IMAGE_PIXELS = None

PDF_MEDIA_TYPE = "application/pdf"
_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"II+\x00", "image/tiff"),  # BigTIFF
    (b"MM\x00+", "image/tiff"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
]
_SNIFF_BYTES = 1024  # PDF headers may be preceded by junk within the first 1 KiB


def sniff_media_type(path: Path) -> str:
    """The file's media type from its content; BadInputError if it is not a supported image."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except IsADirectoryError as exc:
        raise BadInputError("not a file (is a directory)") from exc
    except OSError as exc:
        raise BadInputError(f"cannot open file: {exc.strerror or exc}") from exc
    if not head:
        raise BadInputError("empty file")
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if b"%PDF-" in head:
        return PDF_MEDIA_TYPE
    if _looks_like_text(head):
        raise BadInputError("not an image (looks like text)")
    raise BadInputError("not an image (unrecognised file format)")


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still text.
        return exc.start >= len(head) - 3
    return True


def iter_pages(
    path: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pdf_dpi: int = DEFAULT_PDF_DPI,
) -> Iterator[Page]:
    """Yield the file's pages one at a time (a 200-page TIFF never sits in memory whole).

    Raises BadInputError (possibly after some pages were yielded, e.g. a truncated 3rd frame).
    """
    path = Path(path)
    media_type = sniff_media_type(path)
    if media_type == PDF_MEDIA_TYPE:
        yield from _iter_pdf_pages(path, max_pixels=max_pixels, dpi=pdf_dpi)
    else:
        yield from _iter_raster_pages(path, media_type, max_pixels=max_pixels)


def count_pages(path: Path) -> int:
    """Number of pages without decoding any pixels (0 for unreadable files)."""
    try:
        if sniff_media_type(path) == PDF_MEDIA_TYPE:
            with _open_pdf(path) as pdf:
                return len(pdf)
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except (BadInputError, Exception):
        return 0


# -- raster formats (Pillow) ------------------------------------------------------------


def _iter_raster_pages(path: Path, media_type: str, *, max_pixels: int) -> Iterator[Page]:
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a truncated scan must fail, not yield a grey half
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for ocrd")
    kind = media_type.split("/")[-1].upper()
    try:
        img = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"corrupt {kind} file: {_reason(exc)}") from exc
    with img:
        frames = _frame_count(img, kind)
        for index in range(frames):
            gray, dpi = _decode_frame(img, index, kind, max_pixels)
            yield Page(number=index + 1, image=gray, dpi=dpi)


def _frame_count(img: Image.Image, kind: str) -> int:
    try:
        return max(1, int(getattr(img, "n_frames", 1)))
    except Exception as exc:  # Pillow walks the IFD chain here; a broken chain can raise anything
        raise BadInputError(f"corrupt {kind} file: {_reason(exc)}") from exc


def _decode_frame(
    img: Image.Image, index: int, kind: str, max_pixels: int
) -> tuple[np.ndarray, int]:
    where = f" (page {index + 1})" if index else ""
    try:
        img.seek(index)
        width, height = img.size
        _check_pixels(width, height, max_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data" is harmless to us
            img.load()
            frame = ImageOps.exif_transpose(img) or img
            gray = _to_gray(frame)
    except BadInputError:
        raise
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, struct.error...
        raise BadInputError(f"corrupt {kind} file{where}: {_reason(exc)}") from exc
    if gray.size == 0:
        raise BadInputError(f"corrupt {kind} file{where}: image has no pixels")
    return gray, _dpi_of(img)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise BadInputError(f"image has no pixels ({width} x {height})")
    if width * height > max_pixels:
        raise BadInputError(
            f"image too large: {width} x {height} pixels exceeds limit {max_pixels}"
        )


def _to_gray(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 grayscale, paper white, scaled from the mode's real range."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        # 16-bit samples arrive as I;16 or I (Pillow widens 16-bit PNGs to 32-bit I). A page
        # scan always has white paper, so the smallest usual sample range (8, 12 or 16 bits)
        # that holds the brightest pixel is the range it was stored in.
        peak = float(values.max(initial=0))
        full_scale = next((r for r in (255.0, 4095.0, 65535.0) if peak <= r), peak)
        if mode == "F" and peak <= 1.0:
            full_scale = 1.0
        return np.clip(values * (255.0 / full_scale) + 0.5, 0, 255).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent areas are paper: composite over white before dropping colour.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode != "L":
        img = img.convert("L")  # "1" -> 0/255, RGB/CMYK/YCbCr/P -> luminance
    return np.array(img, dtype=np.uint8)


def _dpi_of(img: Image.Image) -> int:
    dpi = img.info.get("dpi")
    try:
        value = float(dpi[0]) if dpi else 0.0
    except (TypeError, ValueError, IndexError):
        value = 0.0
    return int(round(value)) if 0 < value < 100_000 else 0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


# -- PDF (pypdfium2) --------------------------------------------------------------------


def _open_pdf(path: Path):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise BadInputError("PDF is encrypted") from exc
        if _pdf_is_cut_short(path):
            raise BadInputError("truncated PDF file (no end-of-file marker)") from exc
        if _pdf_has_no_page_objects(path):
            # PDFium refuses to load a document without pages (and says "Success").
            raise BadInputError("PDF has no pages") from exc
        raise BadInputError(f"corrupt PDF file: {_reason(exc)}") from exc


_PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def _pdf_is_cut_short(path: Path) -> bool:
    """A whole PDF ends with %%EOF (give or take trailing whitespace or junk); a copy or
    download cut short does not."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 1024))
        return b"%%EOF" not in fh.read()


def _pdf_has_no_page_objects(path: Path) -> bool:
    with open(path, "rb") as fh:
        data = fh.read(32 * 1024 * 1024)
    compressed_objects = b"/ObjStm" in data  # page dicts may hide in object streams
    return not compressed_objects and _PAGE_OBJECT.search(data) is None


def _iter_pdf_pages(path: Path, *, max_pixels: int, dpi: int) -> Iterator[Page]:
    pdf = _open_pdf(path)
    try:
        try:
            page_count = len(pdf)
        except Exception as exc:
            raise BadInputError(f"corrupt PDF file: {_reason(exc)}") from exc
        if page_count == 0:
            raise BadInputError("PDF has no pages")
        for index in range(page_count):
            yield Page(
                number=index + 1, image=_render_pdf_page(pdf, index, max_pixels, dpi), dpi=dpi
            )
    finally:
        pdf.close()


def _render_pdf_page(pdf, index: int, max_pixels: int, dpi: int) -> np.ndarray:
    try:
        page = pdf[index]
    except Exception as exc:
        raise BadInputError(f"corrupt PDF file (page {index + 1}): {_reason(exc)}") from exc
    try:
        width_pt, height_pt = page.get_size()
        if page.get_rotation() in (90, 270):
            width_pt, height_pt = height_pt, width_pt
        scale = dpi / 72.0
        _check_pixels(int(round(width_pt * scale)), int(round(height_pt * scale)), max_pixels)
        bitmap = page.render(scale=scale, grayscale=True)
        image = np.array(bitmap.to_numpy(), dtype=np.uint8)
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"corrupt PDF file (page {index + 1}): {_reason(exc)}") from exc
    finally:
        page.close()
    if image.ndim == 3:
        image = image[..., 0]
    return np.ascontiguousarray(image)
