"""Page loading: every supported format, content sniffing and every kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrd.types import BadInputError
from ocrd.vision import count_pages, iter_pages, loading, sniff_media_type
from training.forms import DigitBank, render_page

SMALL_PAGE_INCHES = (3.0, 2.2)


@pytest.fixture(scope="module")
def bank() -> DigitBank:
    return DigitBank.load("t10k")


@pytest.fixture(scope="module")
def pages(bank) -> list[np.ndarray]:
    """Three different small form pages (100 dpi), as the generator draws them."""
    rng = np.random.default_rng(7)
    return [
        render_page(bank, rng, dpi=100, rows=2, size_inches=SMALL_PAGE_INCHES).image
        for _ in range(3)
    ]


def _only_page(path: Path, **kwargs) -> np.ndarray:
    loaded = list(iter_pages(path, **kwargs))
    assert len(loaded) == 1
    assert loaded[0].number == 1
    assert loaded[0].image.dtype == np.uint8 and loaded[0].image.ndim == 2
    return loaded[0].image


def test_png_round_trip_keeps_pixels_and_dpi(tmp_path, pages):
    path = tmp_path / "page.png"
    Image.fromarray(pages[0]).save(path, dpi=(100, 100))
    [page] = list(iter_pages(path))
    assert np.array_equal(page.image, pages[0])
    assert page.dpi == 100
    assert sniff_media_type(path) == "image/png"


def test_jpeg_exif_orientation_is_applied(tmp_path, pages):
    source = pages[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.rot90(source, 1)).save(path, quality=95, exif=exif)
    image = _only_page(path)
    assert image.shape == source.shape
    assert np.abs(image.astype(int) - source).mean() < 4  # JPEG loss only


def test_multipage_lzw_tiff_yields_each_page_in_order(tmp_path, pages):
    path = tmp_path / "scan.tif"
    frames = [Image.fromarray(p) for p in pages]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_lzw")
    iterator = iter_pages(path)
    first = next(iterator)  # one page at a time
    assert first.number == 1 and np.array_equal(first.image, pages[0])
    rest = list(iterator)
    assert [p.number for p in rest] == [2, 3]
    assert all(np.array_equal(p.image, src) for p, src in zip(rest, pages[1:], strict=True))
    assert count_pages(path) == 3


def test_bilevel_group4_tiff_becomes_black_and_white_gray(tmp_path, pages):
    bilevel = np.where(pages[1] < 128, 0, 255).astype(np.uint8)
    path = tmp_path / "fax.tif"
    Image.fromarray(bilevel).convert("1").save(path, compression="group4")
    assert Image.open(path).mode == "1"
    image = _only_page(path)
    assert set(np.unique(image)) <= {0, 255}
    assert np.array_equal(image, bilevel)


@pytest.mark.parametrize("suffix", ["tif", "png"])
def test_sixteen_bit_gray_is_scaled_to_eight_bit(tmp_path, pages, suffix):
    deep = pages[0].astype(np.uint16) * 257
    path = tmp_path / f"deep.{suffix}"
    Image.fromarray(deep).save(path)
    assert np.array_equal(_only_page(path), pages[0])


@pytest.mark.parametrize("fmt", ["BMP", "WEBP"])
def test_bmp_and_lossless_webp(tmp_path, pages, fmt):
    path = tmp_path / f"page.{fmt.lower()}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(pages[2]).convert("RGB").save(path, format=fmt, **options)
    assert sniff_media_type(path) == f"image/{fmt.lower()}"
    assert np.abs(_only_page(path).astype(int) - pages[2]).max() <= 1


def test_transparent_png_is_composited_on_white(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)  # fully transparent black...
    rgba[10:30, 20:40] = (0, 0, 0, 255)  # ...except an opaque black square
    path = tmp_path / "sticker.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    image = _only_page(path)
    assert image[0, 0] == 255 and image[20, 30] == 0


def test_scanned_pdf_pages_are_rendered_at_their_scans_resolution(tmp_path, pages):
    path = tmp_path / "form.pdf"
    frames = [Image.fromarray(p) for p in pages[:2]]
    frames[0].save(path, save_all=True, append_images=frames[1:], resolution=100)
    loaded = list(iter_pages(path, pdf_dpi=150))  # pdf_dpi is for pages without a scan
    assert [p.number for p in loaded] == [1, 2]
    for page, source in zip(loaded, pages[:2], strict=True):
        assert page.dpi == 100
        assert abs(page.image.shape[0] - source.shape[0]) <= 1
        assert abs(page.image.shape[1] - source.shape[1]) <= 1
        shrunk = np.array(Image.fromarray(page.image).resize(source.shape[::-1]))
        assert np.abs(shrunk.astype(int) - source).mean() < 12
    assert sniff_media_type(path) == "application/pdf"


def test_png_named_jpg_is_read_by_content(tmp_path, pages):
    path = tmp_path / "misnamed.jpg"
    Image.fromarray(pages[0]).save(path, format="PNG")
    assert sniff_media_type(path) == "image/png"
    assert np.array_equal(_only_page(path), pages[0])


# -- bad input ---------------------------------------------------------------------------


def _reason(path: Path, **kwargs) -> str:
    with pytest.raises(BadInputError) as caught:
        list(iter_pages(path, **kwargs))
    return str(caught.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert _reason(path) == "empty file"


def test_text_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("shopping list: eggs, milk\n")
    assert _reason(path) == "not an image (looks like text)"


def test_unknown_binary(tmp_path):
    path = tmp_path / "blob.tif"
    path.write_bytes(bytes(range(256)) * 4)
    assert _reason(path) == "not an image (unrecognised file format)"


def test_directory_is_not_a_page(tmp_path):
    assert "directory" in _reason(tmp_path)


def test_gray_png_read_by_opencv_gives_pillows_pixels(tmp_path, pages):
    path = tmp_path / "gray.png"
    Image.fromarray(pages[1]).save(path, dpi=(150, 150), optimize=True)
    [page] = list(iter_pages(path))
    assert loading._plain_gray_png(Image.open(path), "PNG", 0)  # the OpenCV path was taken
    assert np.array_equal(page.image, np.array(Image.open(path)))
    assert page.dpi == 150


@pytest.mark.parametrize("after_pixels", [False, True])
def test_gray_png_with_exif_orientation_is_still_turned(tmp_path, pages, after_pixels):
    source = pages[0]
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(np.rot90(source, 1)).save(buffer, format="PNG", exif=exif)
    data = buffer.getvalue()
    if after_pixels:  # the eXIf chunk moved behind IDAT: only a full read finds it
        start = data.index(b"eXIf") - 4
        length = int.from_bytes(data[start : start + 4], "big")
        chunk, data = data[start : start + length + 12], data[:start] + data[start + length + 12 :]
        end = data.index(b"IEND") - 4
        data = data[:end] + chunk + data[end:]
    path = tmp_path / "turned.png"
    path.write_bytes(data)
    assert np.array_equal(_only_page(path), source)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_truncated_files_raise_instead_of_half_pages(tmp_path, pages, fmt):
    buffer = io.BytesIO()
    Image.fromarray(pages[0]).save(buffer, format=fmt)
    data = buffer.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    assert _reason(path).startswith(f"corrupt {fmt} file")


def test_corrupt_png_data(tmp_path, pages):
    buffer = io.BytesIO()
    Image.fromarray(pages[0]).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # damage compressed pixels (CRC no longer matches)
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))
    assert _reason(path).startswith("corrupt PNG file")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims a huge size (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(100_000, 100_000))  # 10 gigapixels if decoded
    assert _reason(path) == "image too large: 100000 x 100000 pixels exceeds limit 200000000"


def test_pixel_limit_is_configurable(tmp_path, pages):
    path = tmp_path / "page.png"
    Image.fromarray(pages[0]).save(path)
    h, w = pages[0].shape
    assert _reason(path, max_pixels=1000) == f"image too large: {w} x {h} pixels exceeds limit 1000"
    assert len(list(iter_pages(path, max_pixels=w * h))) == 1


def test_pdf_pixel_limit_applies_to_the_rendered_size(tmp_path, pages):
    path = tmp_path / "form.pdf"
    Image.fromarray(pages[0]).save(path, resolution=100)
    assert _reason(path, max_pixels=10_000).startswith("image too large")


def _pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A minimal hand-written PDF (objects numbered from 1, object 1 is the catalog)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra
    out += b">>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
NO_PAGES = b"<< /Type /Pages /Kids [] /Count 0 >>"


def test_pdf_without_pages(tmp_path):
    path = tmp_path / "nothing.pdf"
    path.write_bytes(_pdf([CATALOG, NO_PAGES]))
    assert _reason(path) == "PDF has no pages"


def test_password_protected_pdf(tmp_path):
    ids = b"<0123456789abcdef0123456789abcdef>"
    security = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (b"11" * 32, b"22" * 32)
    path = tmp_path / "secret.pdf"
    path.write_bytes(
        _pdf([CATALOG, NO_PAGES, security], b"/Encrypt 3 0 R /ID [%s%s] " % (ids, ids))
    )
    assert _reason(path) == "PDF is encrypted"


def test_corrupt_pdf(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> garbage\n%%EOF\n")
    assert _reason(path).startswith(("corrupt PDF file", "PDF has no pages"))


def test_a_pdf_cut_short_says_it_is_truncated(tmp_path, pages):
    path = tmp_path / "form.pdf"
    Image.fromarray(pages[0]).save(path, format="PDF", resolution=150)
    path.write_bytes(path.read_bytes()[:2000])
    assert _reason(path) == "truncated PDF file (no end-of-file marker)"


def test_bad_third_tiff_page_fails_after_good_pages(tmp_path, pages):
    buffer = io.BytesIO()
    frames = [Image.fromarray(p) for p in pages]
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[: len(data) - pages[2].size // 2])  # last page's strip cut short
    loaded = []
    with pytest.raises(BadInputError, match="corrupt TIFF file"):
        for page in iter_pages(path):
            loaded.append(page.number)
    assert loaded[:1] == [1]


def test_twelve_bit_samples_in_sixteen_bit_tiff_are_scaled_from_their_range(tmp_path, pages):
    twelve = (pages[0].astype(np.uint32) * 4095 // 255).astype(np.uint16)
    path = tmp_path / "scanner12.tif"
    Image.fromarray(twelve).save(path)
    assert np.abs(_only_page(path).astype(int) - pages[0]).max() <= 1
