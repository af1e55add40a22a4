"""Page loading: any supported file -> uint8 grayscale `Page`s, one at a time.

The type is sniffed from the file's content (magic bytes), never its extension. Every way a
file can be unreadable ends in one `BadInputError` with a one-line reason, so the caller can
store it and carry on. The pixel limit and the page cap are checked from the header (or the
PDF page size and count) BEFORE anything is decoded, so a decompression bomb never allocates
its pixels.

Memory: a page above REDUCE_ABOVE_PIXELS (far more than vision's ~150-dpi working resolution
needs) is reduced while it is decoded - JPEG in draft mode (the decoder's own 1/2, 1/4, 1/8
scaling), other rasters through OpenCV's reduced decoding (TIFF strips and tiles straight into
one grayscale buffer), PDF pages rendered at a lower scale - and `Page.reduced` says by how
much, so boxes are mapped back to the file's pixels (`to_file_coordinates`). `admit` lets the
caller hold each page against a byte budget (`ocrd.budget`) from before its decode until the
next page is asked for; the cost is estimated from the header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ocrd.files import NotRegularFileError, open_regular
from ocrd.types import BadInputError, Field, Page
from ocrd.vision.pdf_native import native_dpi

DEFAULT_MAX_PIXELS = 200_000_000
DEFAULT_PDF_DPI = 300
# Pages above this are reduced while decoding (an A4 page at 600 dpi has 35 Mpx: untouched).
REDUCE_ABOVE_PIXELS = 40_000_000
MIN_PLAUSIBLE_DPI = 50  # a resolution tag below this (TIFF's "no unit" 1 x 1) says nothing

Admit = Callable[[int], AbstractContextManager[None]]

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
        with open_regular(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except IsADirectoryError as exc:
        raise BadInputError("not a file (is a directory)") from exc
    except NotRegularFileError as exc:
        raise BadInputError(exc.strerror or "not a regular file") from exc
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


def _no_budget(_nbytes: int) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


def iter_pages(
    path: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pdf_dpi: int = DEFAULT_PDF_DPI,
    max_pages: int = 0,
    admit: Admit | None = None,
) -> Iterator[Page]:
    """Yield the file's pages one at a time (a 200-page TIFF never sits in memory whole).

    `max_pages` (0: no cap) fails a longer document before its first page is decoded. `admit`
    (e.g. `MemoryBudget.hold`) is entered with each page's estimated bytes before it is decoded
    and left when the next page is asked for (or the iterator is closed).
    Raises BadInputError (possibly after some pages were yielded, e.g. a truncated 3rd frame).
    """
    path = Path(path)
    media_type = sniff_media_type(path)
    admit = admit or _no_budget
    if media_type == PDF_MEDIA_TYPE:
        yield from _iter_pdf_pages(path, max_pixels, pdf_dpi, max_pages, admit)
    else:
        yield from _iter_raster_pages(path, media_type, max_pixels, max_pages, admit)


def to_file_coordinates(fields: Sequence[Field], page: Page) -> list[Field]:
    """Fields found on a reduced page, with their boxes in the file's own pixels."""
    if page.reduced == 1.0:
        return list(fields)
    return [
        dataclasses.replace(
            f,
            box=_scaled(f.box, page.reduced),
            digit_boxes=[_scaled(b, page.reduced) for b in f.digit_boxes],
        )
        for f in fields
    ]


def _scaled(box, factor: float):  # noqa: ANN001, ANN202 (ocrd.types.Box)
    return dataclasses.replace(
        box,
        x=int(round(box.x * factor)),
        y=int(round(box.y * factor)),
        w=max(1, int(round(box.w * factor))),
        h=max(1, int(round(box.h * factor))),
    )


def _check_page_count(pages: int, max_pages: int) -> None:
    if max_pages and pages > max_pages:
        raise BadInputError(
            f"too many pages: {pages} (limit {max_pages}; setting max_pages, 0 = no limit)"
        )


def reduction_for(pixels: int) -> int:
    """The integer factor per side that brings a page under REDUCE_ABOVE_PIXELS (1: none)."""
    if pixels <= REDUCE_ABOVE_PIXELS:
        return 1
    return math.ceil(math.sqrt(pixels / REDUCE_ABOVE_PIXELS))


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


def _iter_raster_pages(
    path: Path, media_type: str, max_pixels: int, max_pages: int, admit: Admit
) -> Iterator[Page]:
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a truncated scan must fail, not yield a grey half
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for ocrd")
    kind = media_type.split("/")[-1].upper()
    try:
        img = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"corrupt {kind} file: {_reason(exc)}") from exc
    with img:
        frames = _frame_count(img, kind)
        _check_page_count(frames, max_pages)
        for index in range(frames):
            width, height = _frame_size(img, index, kind)
            _check_pixels(width, height, max_pixels)
            factor = reduction_for(width * height)
            with admit(_raster_cost(img, width, height, factor)):
                gray, dpi, reduced = _decode_frame(img, path, index, kind, factor)
                yield Page(number=index + 1, image=gray, dpi=dpi, reduced=reduced)
                del gray  # not alive beside the next frame while it is decoded


def _frame_count(img: Image.Image, kind: str) -> int:
    try:
        return max(1, int(getattr(img, "n_frames", 1)))
    except Exception as exc:  # Pillow walks the IFD chain here; a broken chain can raise anything
        raise BadInputError(f"corrupt {kind} file: {_reason(exc)}") from exc


def _frame_size(img: Image.Image, index: int, kind: str) -> tuple[int, int]:
    try:
        img.seek(index)
        return img.size
    except Exception as exc:
        where = f" (page {index + 1})" if index else ""
        raise BadInputError(f"corrupt {kind} file{where}: {_reason(exc)}") from exc


def estimate_peak_bytes(path: Path, max_pixels: int, pdf_dpi: int = DEFAULT_PDF_DPI) -> int:
    """The bytes decoding this file needs at its peak, one page at a time: its largest page's
    cost (what `iter_pages` passes to `admit`), from the header only. 0 where the header does
    not read (decoding then fails with the reason, costing nothing)."""
    try:
        if sniff_media_type(path) == PDF_MEDIA_TYPE:
            return _pdf_peak_bytes(path, max_pixels, pdf_dpi)
        with Image.open(path) as img:
            peak = 0
            for index in range(max(1, int(getattr(img, "n_frames", 1)))):
                img.seek(index)
                width, height = img.size
                if 0 < width * height <= max_pixels:
                    factor = reduction_for(width * height)
                    peak = max(peak, _raster_cost(img, width, height, factor))
            return peak
    except Exception:  # noqa: BLE001 (any header error: decoding reports it properly)
        return 0


def _pdf_peak_bytes(path: Path, max_pixels: int, dpi: int) -> int:
    pdf = _open_pdf(path)
    try:
        peak = 0
        for index in range(len(pdf)):
            width_pt, height_pt = pdf.get_page_size(index)
            pixels = int(width_pt * dpi / 72.0) * int(height_pt * dpi / 72.0)
            if 0 < pixels <= max_pixels:
                peak = max(peak, _pdf_cost(pixels))
        return peak
    finally:
        pdf.close()


def _pdf_cost(pixels: int) -> int:
    """A rendered page: the bitmap, its copy, vision's page (reduced when huge)."""
    reduced = float(reduction_for(pixels))
    return 3 * int(pixels / reduced**2)


def _raster_cost(img: Image.Image, width: int, height: int, factor: int) -> int:
    """Bytes a page needs at its peak: the decoded buffer(s), then the page vision reads."""
    pixels = width * height
    if factor > 1:  # one full-size 8-bit buffer at most, then the reduced page twice
        return pixels + 2 * pixels // (factor * factor)
    per_pixel = 1 if img.mode in ("1", "L", "P") else 4
    return pixels * (per_pixel + 2)


def _decode_frame(
    img: Image.Image, path: Path, index: int, kind: str, factor: int
) -> tuple[np.ndarray, int, float]:
    """(grayscale pixels, dpi of those pixels, file pixels per pixel) of frame `index`."""
    where = f" (page {index + 1})" if index else ""
    width = img.size[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data" is harmless to us
            gray = None
            if factor > 1 and kind == "JPEG":
                img.draft("L", (math.ceil(img.size[0] / factor), math.ceil(img.size[1] / factor)))
            elif factor > 1:
                gray = _reduced_with_opencv(path, index, factor)
            elif _plain_gray_png(img, kind, index):
                gray = _gray_png_with_opencv(path)
            if gray is None:
                img.load()
                gray = _to_gray(_upright(img))
                gray = _shrink_to(gray, factor) if factor > 1 and kind != "JPEG" else gray
    except BadInputError:
        raise
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, struct.error...
        raise BadInputError(f"corrupt {kind} file{where}: {_reason(exc)}") from exc
    if gray.size == 0:
        raise BadInputError(f"corrupt {kind} file{where}: image has no pixels")
    reduced = width / gray.shape[1]
    dpi = _dpi_of(img)
    return gray, int(round(dpi / reduced)) if dpi else 0, reduced


def _plain_gray_png(img: Image.Image, kind: str, index: int) -> bool:
    """An 8-bit grayscale PNG that Pillow would hand over unchanged (no transparency, no
    EXIF turn): OpenCV decodes it to the same pixels in one buffer, where Pillow's copy out
    (tobytes, then numpy) costs ~40% on top of the decoding."""
    if kind != "PNG" or index or img.mode != "L" or "transparency" in img.info:
        return False
    if len(img.tile) != 1 or img.tile[0][3] != "L":  # 8 bits per sample, one zlib stream
        return False
    # Pillow's EXIF look for a PNG decodes the whole image; the chunk list tells as much.
    return not _png_chunks(img.fp, {b"eXIf", b"tEXt", b"zTXt", b"iTXt"})


def _png_chunks(file: BinaryIO, wanted: set[bytes]) -> bool:
    """Whether the PNG has any chunk of the `wanted` types (EXIF, or text that may carry a
    "Raw profile type exif"); True where the chunk list does not read to its end."""
    position = file.tell()
    try:
        file.seek(8)  # the signature
        while True:
            header = file.read(8)
            if len(header) < 8:
                return True
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind in wanted:
                return True
            if kind == b"IEND":
                return False
            file.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    except (OSError, ValueError):
        return True
    finally:
        file.seek(position)


def _gray_png_with_opencv(path: Path) -> np.ndarray | None:
    """The PNG's pixels, or None where OpenCV cannot read it (libpng refuses a truncated or
    corrupt file; Pillow then decodes it and says why)."""
    import cv2

    try:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except (cv2.error, UnicodeError):
        return None
    if image is None or image.dtype != np.uint8 or image.ndim != 2:
        return None
    return image


def _upright(img: Image.Image) -> Image.Image:
    """The frame turned by its EXIF orientation (no copy when it has none)."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    if orientation in (None, 1):
        return img
    return ImageOps.exif_transpose(img) or img


_REDUCED_FLAGS = {2: "IMREAD_REDUCED_GRAYSCALE_2", 4: "IMREAD_REDUCED_GRAYSCALE_4",
                  8: "IMREAD_REDUCED_GRAYSCALE_8"}  # fmt: skip


def _reduced_with_opencv(path: Path, index: int, factor: int) -> np.ndarray | None:
    """OpenCV decodes strip by strip (or tile by tile) into one 8-bit grayscale buffer, then
    reduces it: the page's colour never sits in memory at full size. None where OpenCV cannot
    read the file (Pillow then decodes it)."""
    import cv2

    scale = next((s for s in (2, 4, 8) if s >= factor), 8)
    flags = getattr(cv2, _REDUCED_FLAGS[scale])
    try:
        if index == 0:
            image = cv2.imread(str(path), flags)
        else:
            ok, images = cv2.imreadmulti(str(path), start=index, count=1, flags=flags)
            image = images[0] if ok and images else None
    except (cv2.error, UnicodeError):
        return None
    if image is None or image.size == 0 or image.dtype != np.uint8 or image.ndim != 2:
        return None
    return _shrink_to(image, factor / scale) if factor > scale else image


def _shrink_to(gray: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    height, width = gray.shape
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


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
    return int(round(value)) if MIN_PLAUSIBLE_DPI <= value < 100_000 else 0


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


def _iter_pdf_pages(
    path: Path, max_pixels: int, dpi: int, max_pages: int, admit: Admit
) -> Iterator[Page]:
    pdf = _open_pdf(path)
    try:
        try:
            page_count = len(pdf)
        except Exception as exc:
            raise BadInputError(f"corrupt PDF file: {_reason(exc)}") from exc
        if page_count == 0:
            raise BadInputError("PDF has no pages")
        _check_page_count(page_count, max_pages)
        for index in range(page_count):
            yield from _pdf_page(pdf, index, max_pixels, dpi, admit)
    finally:
        pdf.close()


def _pdf_page(pdf, index: int, max_pixels: int, dpi: int, admit: Admit) -> Iterator[Page]:  # noqa: ANN001
    try:
        page = pdf[index]
    except Exception as exc:
        raise BadInputError(f"corrupt PDF file (page {index + 1}): {_reason(exc)}") from exc
    try:
        width_pt, height_pt = page.get_size()
        if page.get_rotation() in (90, 270):
            width_pt, height_pt = height_pt, width_pt
        # A scanned page renders in its scan's own pixels (boxes as a viewer of the extracted
        # image shows them); text and vector pages at `dpi`.
        dpi = native_dpi(page) or dpi
        scale = dpi / 72.0
        width, height = int(round(width_pt * scale)), int(round(height_pt * scale))
    except Exception as exc:
        page.close()
        raise BadInputError(f"corrupt PDF file (page {index + 1}): {_reason(exc)}") from exc
    try:
        _check_pixels(width, height, max_pixels)
        reduced = float(reduction_for(width * height))
        with admit(_pdf_cost(width * height)):
            image = _render_pdf_page(page, index, scale / reduced)
            yield Page(
                number=index + 1, image=image, dpi=int(round(dpi / reduced)), reduced=reduced
            )
    finally:
        page.close()


def _render_pdf_page(page, index: int, scale: float) -> np.ndarray:  # noqa: ANN001
    try:
        bitmap = page.render(scale=scale, grayscale=True)
        image = np.array(bitmap.to_numpy(), dtype=np.uint8)
    except Exception as exc:
        raise BadInputError(f"corrupt PDF file (page {index + 1}): {_reason(exc)}") from exc
    if image.ndim == 3:
        image = image[..., 0]
    return np.ascontiguousarray(image)
