"""Synthetic scanned form pages with ground truth, for tests and benchmarks.

A page is A4 at a chosen dpi with a printed title, printed row labels and one field per row:
comb boxes (one digit per cell), an underlined string, a boxed string, a free string, or a
printed reference number. Handwritten strings are composed from MNIST digits (`split="train"`
for anything used in training, `split="t10k"` for evaluation only). One scan degradation
is applied per page (rotation, scale, blur, noise, speckle, JPEG, bilevel fax, edge shadow,
grey paper, faint pencil, or a mix). Ground truth per field: text, kind, layout and the tight
ink box in the pixels of the file as written (PDF pages too: ocrd renders a scanned PDF
page at its image's own resolution).

    python -m training.forms --out DIR --pages N --seed S --split SPLIT --format FMT

SPLIT is train or t10k; FMT is png, jpeg, tiff or pdf.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, TiffImagePlugin

from ocrd.types import Box

A4_INCHES = (8.27, 11.69)  # width, height
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
LAYOUTS = ("comb", "underline", "box", "free", "printed")
MATCH_IOU = 0.5  # a found field overlapping its truth box this much counts as located
DEGRADATIONS = (
    "clean",
    "rotate",
    "scale",
    "blur",
    "noise",
    "speckle",
    "jpeg",
    "bilevel",
    "shadow",
    "grey",
    "faint",
    "mixed",
)
FORMATS = ("png", "jpeg", "tiff", "pdf")
LABELS = (
    "Account number",
    "Amount",
    "Date of birth",
    "Postcode",
    "Customer no.",
    "Quantity",
    "Invoice",
    "Telephone",
    "Policy number",
    "Branch code",
)
TITLES = ("Application form", "Order sheet", "Claim form", "Registration", "Delivery note")


@dataclass
class TruthField:
    text: str
    kind: str  # handwritten / printed
    layout: str  # comb / underline / box / free / printed
    box: list[int]  # [x, y, w, h] tight around the ink, in the written file's pixels


@dataclass
class FormPage:
    image: np.ndarray  # uint8 grayscale, paper white
    dpi: int
    degradation: str
    fields: list[TruthField] = field(default_factory=list)


class DigitBank:
    """MNIST digits by label, cropped to their ink."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = images
        self.by_label = [np.flatnonzero(labels == d) for d in range(10)]

    @classmethod
    def load(cls, split: str) -> DigitBank:
        return _bank(split)

    @classmethod
    def holdout(cls) -> DigitBank:
        """The MNIST-train digits no model trains on (the seeded validation hold-out): for
        choosing vision and fusion rules without touching t10k."""
        from training.digits import VALIDATION_SIZE, VALIDATION_SPLIT_SEED
        from training.readers import load_mnist

        images, labels = load_mnist("train")
        order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(len(images))
        keep = order[:VALIDATION_SIZE]
        return cls(images[keep], labels[keep])

    def sample(self, digit: int, rng: np.random.Generator) -> np.ndarray:
        image = self.images[rng.choice(self.by_label[digit])]
        rows = np.flatnonzero(image.max(axis=1) > 40)
        cols = np.flatnonzero(image.max(axis=0) > 40)
        return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@lru_cache(maxsize=2)
def _bank(split: str) -> DigitBank:
    from training.readers import load_mnist

    images, labels = load_mnist(split)
    return DigitBank(images, labels)


@lru_cache(maxsize=32)
def _font(name: str, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), size_px)


# -- drawing ---------------------------------------------------------------------------


class _Canvas:
    """A white page plus a float 'ink' layer for handwriting (composited at the end)."""

    def __init__(self, dpi: int, size_inches: tuple[float, float]):
        self.dpi = dpi
        self.width = int(round(size_inches[0] * dpi))
        self.height = int(round(size_inches[1] * dpi))
        self.paper = Image.new("L", (self.width, self.height), 255)
        self.draw = ImageDraw.Draw(self.paper)
        self.hand = np.zeros((self.height, self.width), np.float32)

    def px(self, inches: float) -> int:
        return int(round(inches * self.dpi))

    def line_width(self) -> int:
        return max(1, self.px(0.011))

    def text(self, xy: tuple[int, int], text: str, points: float, bold: bool = False) -> list[int]:
        font = _font("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", self.px(points / 72))
        self.draw.text(xy, text, fill=0, font=font, anchor="ls")  # xy = left end of baseline
        x0, y0, x1, y1 = self.draw.textbbox(xy, text, font=font, anchor="ls")
        return [x0, y0, x1 - x0, y1 - y0]

    def write_digit(self, digit_img: np.ndarray, x: int, bottom: int, height: int, darkness: float):
        """Paste an MNIST digit scaled to `height` px with its bottom at `bottom`; returns box."""
        scale = height / digit_img.shape[0]
        w = max(1, int(round(digit_img.shape[1] * scale)))
        ink = cv2.resize(digit_img, (w, height), interpolation=cv2.INTER_LINEAR)
        ink = ink.astype(np.float32) / 255.0 * darkness
        y = bottom - height
        y0, x0 = max(0, y), max(0, x)
        y1, x1 = min(self.height, y + height), min(self.width, x + w)
        region = ink[y0 - y : y1 - y, x0 - x : x1 - x]
        self.hand[y0:y1, x0:x1] = np.maximum(self.hand[y0:y1, x0:x1], region)
        return [x0, y0, x1 - x0, y1 - y0], w

    def compose(self) -> np.ndarray:
        paper = np.asarray(self.paper, np.float32)
        return np.clip(paper * (1.0 - self.hand), 0, 255).astype(np.uint8)


def _union(boxes: list[list[int]]) -> list[int]:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return [x0, y0, x1 - x0, y1 - y0]


def _ink_box(canvas: _Canvas, box: list[int]) -> list[int]:
    """Tighten a box to the pixels that are visibly inked (> 25% darkness)."""
    x, y, w, h = box
    region = canvas.hand[y : y + h, x : x + w] > 0.25
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if not len(rows):
        return box
    return [
        x + int(cols[0]),
        y + int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
    ]


def _digits_text(rng: np.random.Generator, low: int, high: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=int(rng.integers(low, high + 1))))


def _write_string(
    canvas: _Canvas,
    bank: DigitBank,
    rng: np.random.Generator,
    text: str,
    x: int,
    baseline: int,
    height: int,
    darkness: float,
) -> list[int]:
    boxes = []
    for char in text:
        h = int(round(height * rng.uniform(0.9, 1.1)))
        bottom = baseline + int(round(height * rng.uniform(-0.05, 0.05)))
        box, w = canvas.write_digit(bank.sample(int(char), rng), x, bottom, h, darkness)
        boxes.append(box)
        x += w + int(round(height * rng.uniform(0.08, 0.35)))
    return _ink_box(canvas, _union(boxes))


def _field_comb(canvas, bank, rng, x, row_top, darkness) -> TruthField:
    text = _digits_text(rng, 4, 8)
    cell_w, cell_h = canvas.px(rng.uniform(0.28, 0.36)), canvas.px(rng.uniform(0.36, 0.44))
    lw = canvas.line_width()
    top = row_top
    canvas.draw.rectangle([x, top, x + cell_w * len(text), top + cell_h], outline=0, width=lw)
    for i in range(1, len(text)):
        canvas.draw.line([x + i * cell_w, top, x + i * cell_w, top + cell_h], fill=0, width=lw)
    boxes = []
    for i, char in enumerate(text):
        h = int(round(cell_h * rng.uniform(0.6, 0.8)))
        digit = bank.sample(int(char), rng)
        w = int(round(digit.shape[1] * h / digit.shape[0]))
        left = (
            x + i * cell_w + (cell_w - w) // 2 + int(rng.integers(-cell_w // 10, cell_w // 10 + 1))
        )
        bottom = (
            top + cell_h - (cell_h - h) // 2 + int(rng.integers(-cell_h // 10, cell_h // 10 + 1))
        )
        box, _ = canvas.write_digit(digit, left, bottom, h, darkness)
        boxes.append(box)
    return TruthField(text, "handwritten", "comb", _ink_box(canvas, _union(boxes)))


def _field_underline(canvas, bank, rng, x, row_top, darkness) -> TruthField:
    text = _digits_text(rng, 3, 8)
    height = canvas.px(rng.uniform(0.2, 0.3))
    baseline = row_top + canvas.px(0.4)
    length = canvas.px(rng.uniform(2.6, 3.4))
    line_y = baseline + canvas.px(rng.uniform(-0.01, 0.04))  # strokes may cross the line
    canvas.draw.line([x, line_y, x + length, line_y], fill=0, width=canvas.line_width())
    box = _write_string(canvas, bank, rng, text, x + canvas.px(0.15), baseline, height, darkness)
    return TruthField(text, "handwritten", "underline", box)


def _field_box(canvas, bank, rng, x, row_top, darkness) -> TruthField:
    text = _digits_text(rng, 3, 8)
    box_h = canvas.px(rng.uniform(0.42, 0.5))
    height = int(box_h * rng.uniform(0.55, 0.7))
    length = canvas.px(rng.uniform(2.6, 3.4))
    canvas.draw.rectangle(
        [x, row_top, x + length, row_top + box_h], outline=0, width=canvas.line_width()
    )
    baseline = row_top + (box_h + height) // 2
    box = _write_string(canvas, bank, rng, text, x + canvas.px(0.12), baseline, height, darkness)
    return TruthField(text, "handwritten", "box", box)


def _field_free(canvas, bank, rng, x, row_top, darkness) -> TruthField:
    text = _digits_text(rng, 2, 8)
    height = canvas.px(rng.uniform(0.2, 0.32))
    box = _write_string(canvas, bank, rng, text, x, row_top + canvas.px(0.4), height, darkness)
    return TruthField(text, "handwritten", "free", box)


def _field_printed(canvas, bank, rng, x, row_top, darkness) -> TruthField:
    text = _digits_text(rng, 5, 10)
    box = canvas.text((x, row_top + canvas.px(0.35)), text, float(rng.uniform(10, 14)))
    return TruthField(text, "printed", "printed", box)


_FIELD_WRITERS = {
    "comb": _field_comb,
    "underline": _field_underline,
    "box": _field_box,
    "free": _field_free,
    "printed": _field_printed,
}


def render_page(
    bank: DigitBank,
    rng: np.random.Generator,
    *,
    dpi: int = 300,
    degradation: str = "clean",
    layouts: tuple[str, ...] = LAYOUTS,
    rows: int | None = None,
    size_inches: tuple[float, float] = A4_INCHES,
) -> FormPage:
    """One form page with its ground truth (boxes in this image's pixels)."""
    canvas = _Canvas(dpi, size_inches)
    margin = canvas.px(0.8)
    canvas.text((margin, canvas.px(0.9)), str(rng.choice(TITLES)), 20, bold=True)
    _draw_logo(canvas, rng)
    darkness = (
        float(rng.uniform(0.3, 0.5)) if degradation == "faint" else float(rng.uniform(0.75, 1.0))
    )
    row_pitch = 0.85
    max_rows = int((size_inches[1] - 1.8) / row_pitch)
    count = min(rows or max_rows, max_rows)
    order = [layouts[i % len(layouts)] for i in range(count)]
    rng.shuffle(order)
    fields = []
    field_x = margin + canvas.px(2.2)
    for index, layout in enumerate(order):
        row_top = canvas.px(1.5 + index * row_pitch)
        canvas.text((margin, row_top + canvas.px(0.3)), str(rng.choice(LABELS)), 11)
        writer = _FIELD_WRITERS[layout]
        fields.append(writer(canvas, bank, rng, field_x, row_top, darkness))
    image = canvas.compose()
    page = FormPage(image=image, dpi=dpi, degradation=degradation, fields=fields)
    return degrade(page, rng)


def _draw_logo(canvas: _Canvas, rng: np.random.Generator) -> None:
    """A filled shape at the top right: ink that is not digits."""
    r = canvas.px(0.3)
    cx, cy = canvas.width - canvas.px(1.3), canvas.px(0.75)
    canvas.draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=0)
    canvas.draw.rectangle([cx - r // 2, cy - r // 4, cx + r // 2, cy + r // 4], fill=255)


# -- degradations ------------------------------------------------------------------------


def degrade(page: FormPage, rng: np.random.Generator) -> FormPage:
    """Apply the page's named degradation ("mixed" = several mild ones)."""
    kind = page.degradation
    image = page.image.astype(np.float32)
    steps = [kind]
    if kind == "mixed":
        steps = list(
            rng.choice(["rotate", "blur", "noise", "speckle", "grey", "jpeg"], 3, replace=False)
        )
    scale = page.dpi / 300.0
    for step in steps:
        if step == "rotate":
            image, page.fields = _rotate(image, page.fields, float(rng.uniform(-5, 5)))
        elif step == "scale":  # scanned at 85-115 %, dpi tag unchanged
            image, page.fields = _rescale(image, page.fields, float(rng.uniform(0.85, 1.15)))
        elif step == "blur":
            image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.6, 1.6)) * scale)
        elif step == "noise":
            image = image + rng.normal(0, rng.uniform(8, 20), image.shape).astype(np.float32)
        elif step == "speckle":
            image = _speckle(image, rng, scale)
        elif step == "grey":
            low = float(rng.uniform(150, 200))
            image = low + image * (255 - low) / 255 * rng.uniform(
                0.8, 1.0
            )  # grey paper, lighter ink
        elif step == "shadow":
            image = _edge_shadow(image, rng)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if "jpeg" in steps:
        ok, data = cv2.imencode(
            ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 40))]
        )
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if "bilevel" in steps:
        image = np.where(image < 160, 0, 255).astype(np.uint8)
    page.image = image
    return page


def _rotate(image: np.ndarray, fields: list[TruthField], angle: float):
    h, w = image.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    rotated = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
    moved = []
    for f in fields:
        x, y, bw, bh = f.box
        # Rotating a tight box's corners over-estimates a little; shrink towards the centre
        # by the usual 'rotated rectangle' slack so truth stays close to the ink.
        corners = np.array(
            [[x, y, 1], [x + bw, y, 1], [x, y + bh, 1], [x + bw, y + bh, 1]], np.float64
        )
        pts = corners @ matrix.T
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        moved.append(TruthField(f.text, f.kind, f.layout, _box_from(x0, y0, x1, y1)))
    return rotated, moved


def _rescale(image: np.ndarray, fields: list[TruthField], factor: float):
    h, w = image.shape
    size = (int(round(w * factor)), int(round(h * factor)))
    scaled = cv2.resize(
        image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    )
    moved = [
        TruthField(f.text, f.kind, f.layout, [int(round(v * factor)) for v in f.box])
        for f in fields
    ]
    return scaled, moved


def _box_from(x0: float, y0: float, x1: float, y1: float) -> list[int]:
    return [int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))]


def _speckle(image: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    h, w = image.shape
    count = int(h * w * rng.uniform(1e-5, 4e-5))
    ys, xs = rng.integers(0, h, count), rng.integers(0, w, count)
    radius = max(1, int(round(1.5 * scale)))
    out = image.copy()
    for y, x in zip(ys, xs, strict=True):
        cv2.circle(out, (int(x), int(y)), int(rng.integers(1, radius + 1)), 0, -1)
    return out


def _edge_shadow(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape
    width = int(w * rng.uniform(0.08, 0.15))
    ramp = np.ones(w, np.float32)
    ramp[:width] = np.linspace(rng.uniform(0.35, 0.6), 1.0, width)
    if rng.random() < 0.5:
        ramp = ramp[::-1]
    return image * ramp[None, :]


# -- writing -------------------------------------------------------------------------------


def write_document(pages: list[FormPage], path: Path, fmt: str) -> dict:
    """Write `pages` as one file (png/jpeg: first page only) and return its truth record.
    Each page of a TIFF or PDF carries its own dpi (pages of one file may differ)."""
    images = [_pil_page(p) for p in pages]
    if fmt in ("png", "jpeg"):
        images = images[:1]
        pages = pages[:1]
    if fmt == "png":
        images[0].save(path, format="PNG", dpi=(pages[0].dpi,) * 2)
    elif fmt == "jpeg":
        images[0].convert("L").save(path, format="JPEG", quality=92, dpi=(pages[0].dpi,) * 2)
    elif fmt == "tiff":
        _write_tiff(images, [p.dpi for p in pages], path)
    elif fmt == "pdf":
        for index, (image, page) in enumerate(zip(images, pages, strict=True)):
            image.save(path, format="PDF", append=index > 0, resolution=page.dpi)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    return {
        "file": path.name,
        "format": fmt,
        "pages": [_page_truth(p, i + 1, fmt) for i, p in enumerate(pages)],
    }


def _write_tiff(images: list[Image.Image], dpis: list[int], path: Path) -> None:
    """A multi-page TIFF, one frame at a time (Pillow's save_all gives every frame the first
    frame's dpi); bilevel documents as Group 4, others LZW."""
    compression = "group4" if all(i.mode == "1" for i in images) else "tiff_lzw"
    with TiffImagePlugin.AppendingTiffWriter(str(path), new=True) as tiff:
        for image, dpi in zip(images, dpis, strict=True):
            image.save(tiff, format="TIFF", compression=compression, dpi=(dpi, dpi))
            tiff.newFrame()


def _pil_page(page: FormPage) -> Image.Image:
    img = Image.fromarray(page.image, mode="L")
    if page.degradation == "bilevel":
        img = img.convert("1", dither=Image.Dither.NONE)  # fax: 1-bit, Group 4 in TIFF
    return img


def _page_truth(page: FormPage, number: int, fmt: str) -> dict:
    """Truth in the page's own pixels: every format, PDF too (ocrd renders a scanned PDF page
    at its image's resolution). `fmt` is kept for callers."""
    fields = [asdict(f) | {"box": list(f.box)} for f in page.fields]
    h, w = page.image.shape
    return {
        "page": number,
        "dpi": page.dpi,
        "width": w,
        "height": h,
        "degradation": page.degradation,
        "fields": fields,
    }


def generate(
    out: Path,
    *,
    pages: int,
    seed: int,
    split: str,
    fmt: str,
    pages_per_file: int = 1,
    dpi: int | None = None,
    degradations: tuple[str, ...] = DEGRADATIONS,
    layouts: tuple[str, ...] = LAYOUTS,
    rows: int | None = None,
    size_inches: tuple[float, float] = A4_INCHES,
) -> list[Path]:
    """Write `pages` pages into `out` (form-0001.<ext> + form-0001.json, ...); returns files."""
    out.mkdir(parents=True, exist_ok=True)
    bank = DigitBank.load(split)
    rng = np.random.default_rng(seed)
    ext = {"png": "png", "jpeg": "jpg", "tiff": "tif", "pdf": "pdf"}[fmt]
    per_file = pages_per_file if fmt in ("tiff", "pdf") else 1
    written = []
    for file_index, start in enumerate(range(0, pages, per_file)):
        batch = []
        for page_index in range(start, min(pages, start + per_file)):
            page_dpi = dpi or int(rng.choice([150, 200, 300, 400, 600]))
            kind = degradations[page_index % len(degradations)]
            batch.append(
                render_page(
                    bank,
                    rng,
                    dpi=page_dpi,
                    degradation=kind,
                    layouts=layouts,
                    rows=rows,
                    size_inches=size_inches,
                )
            )
        path = out / f"form-{file_index + 1:04d}.{ext}"
        truth = write_document(batch, path, fmt)
        truth["split"] = split
        path.with_suffix(".json").write_text(json.dumps(truth, indent=1))
        written.append(path)
    return written


def encode_png(page: FormPage) -> bytes:
    """The page as PNG bytes (handy for tests that need in-memory files)."""
    buffer = io.BytesIO()
    _pil_page(page).save(buffer, format="PNG", dpi=(page.dpi, page.dpi))
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("train", "t10k"), default="train")
    parser.add_argument("--format", choices=FORMATS, default="png")
    parser.add_argument("--pages-per-file", type=int, default=1, help="tiff/pdf only")
    parser.add_argument("--dpi", type=int, default=None, help="default: random 150-600 per page")
    parser.add_argument(
        "--degradation",
        choices=DEGRADATIONS,
        action="append",
        help="repeatable; default: cycle through all",
    )
    parser.add_argument(
        "--layout", choices=LAYOUTS, action="append", help="repeatable; default all"
    )
    args = parser.parse_args(argv)
    files = generate(
        args.out,
        pages=args.pages,
        seed=args.seed,
        split=args.split,
        fmt=args.format,
        pages_per_file=args.pages_per_file,
        dpi=args.dpi,
        degradations=tuple(args.degradation or DEGRADATIONS),
        layouts=tuple(args.layout or LAYOUTS),
    )
    print(f"wrote {len(files)} file(s) to {args.out}")


def form_digit_crops(
    bank: DigitBank, rng: np.random.Generator, pages: int
) -> tuple[np.ndarray, np.ndarray]:
    """Digit crops exactly as the pipeline cuts them from generated form pages (every
    degradation in turn, 150-600 dpi), labelled from the ground truth: (N, 28, 28) float32
    and (N,) labels. Only fields whose crops match their digits one-to-one are used, so a
    crop holding two digits or half of one never gets a label."""
    from ocrd.types import Page
    from ocrd.vision import find_fields

    crops: list[np.ndarray] = []
    labels: list[int] = []
    for index in range(pages):
        dpi = int(rng.choice([150, 200, 300, 400, 600]))
        page = render_page(bank, rng, dpi=dpi, degradation=DEGRADATIONS[index % len(DEGRADATIONS)])
        found = find_fields(Page(1, page.image, page.dpi))
        for truth in page.fields:
            best = best_match([f.box for f in found], truth.box)
            if best is None:
                continue
            field = found[best]
            if len(field.digit_crops) == len(truth.text):
                crops.extend(field.digit_crops)
                labels.extend(int(char) for char in truth.text)
    return np.stack(crops).astype(np.float32), np.asarray(labels, np.int64)


def best_match(boxes: list[Box] | list[list[int]], truth: Box | list[int]) -> int | None:
    """Index of the found box that overlaps a truth box most, when it overlaps enough
    (IoU >= MATCH_IOU) to count as that field located; else None."""
    scores = [iou(box, truth) for box in boxes]
    best = int(np.argmax(scores)) if scores else -1
    return best if best >= 0 and scores[best] >= MATCH_IOU else None


def iou(a: Box | list[int], b: Box | list[int]) -> float:
    """Intersection over union of two boxes: how ground truth is matched to found fields."""
    ax, ay, aw, ah = a.as_list() if isinstance(a, Box) else a
    bx, by, bw, bh = b.as_list() if isinstance(b, Box) else b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


# -- fixed form families (templates) ---------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field of a fixed form, in inches from the page's top left."""

    name: str
    label: str
    layout: str  # comb / box / underline / free / printed
    x: float
    y: float  # top of the field's row
    size: float  # comb: cells; box / underline: width in inches; free / printed: max digits
    label_at: tuple[float, float] = (0.0, 0.0)  # left end of the label's baseline


@dataclass(frozen=True)
class FormLayout:
    """A form that is printed the same way every time and filled in by different people."""

    name: str
    title: str
    title_at: tuple[float, float]
    fields: tuple[FieldSpec, ...]
    logo_at: tuple[float, float] | None = None  # centre of the logo, inches


COMB_CELL = (0.32, 0.40)  # inches
BOX_HEIGHT = 0.46


def _left_labels(x_label: float, x_field: float, top: float, pitch: float, rows) -> tuple:
    return tuple(
        FieldSpec(name, label, layout, x_field, top + i * pitch, size,
                  (x_label, top + i * pitch + 0.3))
        for i, (name, label, layout, size) in enumerate(rows)
    )  # fmt: skip


def _two_columns(top: float, pitch: float, rows) -> tuple:
    specs = []
    for i, (name, label, layout, size) in enumerate(rows):
        x = 0.8 if i % 2 == 0 else 4.6
        y = top + (i // 2) * pitch
        specs.append(FieldSpec(name, label, layout, x, y + 0.22, size, (x, y)))
    return tuple(specs)


FORM_FAMILIES: dict[str, FormLayout] = {
    "claim": FormLayout(
        "claim",
        "Claim form",
        (0.8, 0.9),
        _left_labels(
            0.8,
            3.0,
            1.5,
            0.95,
            [
                ("policy_number", "Policy number", "comb", 7),
                ("amount", "Amount", "box", 3.0),
                ("date_of_birth", "Date of birth", "comb", 8),
                ("branch_code", "Branch code", "underline", 3.0),
                ("telephone", "Telephone", "box", 3.2),
                ("reference", "Reference", "printed", 8),
                ("quantity", "Quantity", "free", 4),
                ("postcode", "Postcode", "comb", 5),
            ],
        ),
        logo_at=(6.97, 0.75),
    ),
    "order": FormLayout(
        "order",
        "Order sheet",
        (3.0, 1.0),
        _two_columns(
            1.8,
            1.25,
            [
                ("customer_no", "Customer no.", "comb", 6),
                ("invoice", "Invoice", "box", 2.9),
                ("quantity", "Quantity", "comb", 3),
                ("amount", "Amount", "underline", 2.9),
                ("account_number", "Account number", "comb", 8),
                ("telephone", "Telephone", "box", 2.9),
                ("order_ref", "Order ref.", "printed", 7),
                ("branch_code", "Branch code", "free", 4),
            ],
        ),
    ),
    "registration": FormLayout(
        "registration",
        "Registration",
        (0.8, 1.1),
        _left_labels(
            5.0,
            0.8,
            2.0,
            0.9,
            [
                ("member_no", "Member no.", "comb", 9),
                ("postcode", "Postcode", "comb", 5),
                ("date_of_birth", "Date of birth", "comb", 8),
                ("amount", "Amount", "box", 2.6),
                ("telephone", "Telephone", "underline", 3.2),
                ("branch_code", "Branch code", "free", 4),
                ("reference", "Reference", "printed", 9),
            ],
        ),
        logo_at=(7.0, 1.0),
    ),
}


def render_form(
    form: FormLayout,
    bank: DigitBank | None,
    rng: np.random.Generator,
    *,
    dpi: int = 300,
    blank_rate: float = 0.0,
) -> FormPage:
    """One copy of a fixed form, clean: blank when `bank` is None, else every field filled
    (each left empty with probability `blank_rate`). Truth fields follow `form.fields`' order,
    an empty one with text "" and the field's box."""
    canvas = _Canvas(dpi, A4_INCHES)
    canvas.text((canvas.px(form.title_at[0]), canvas.px(form.title_at[1])), form.title, 20, True)
    if form.logo_at is not None:
        _draw_logo_at(canvas, form.logo_at)
    darkness = float(rng.uniform(0.75, 1.0))
    truths = []
    for spec in form.fields:
        lx, ly = spec.label_at
        canvas.text((canvas.px(lx), canvas.px(ly)), spec.label, 11)
        frame = _draw_frame(canvas, spec)
        filled = bank is not None and rng.random() >= blank_rate
        truth = _fill(canvas, bank, rng, spec, darkness) if filled else None
        kind = "printed" if spec.layout == "printed" else "handwritten"
        truths.append(truth or TruthField("", kind, spec.layout, frame))
    return FormPage(image=canvas.compose(), dpi=dpi, degradation="clean", fields=truths)


def _draw_logo_at(canvas: _Canvas, centre: tuple[float, float]) -> None:
    r = canvas.px(0.3)
    cx, cy = canvas.px(centre[0]), canvas.px(centre[1])
    canvas.draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=0)
    canvas.draw.rectangle([cx - r // 2, cy - r // 4, cx + r // 2, cy + r // 4], fill=255)


def _draw_frame(canvas: _Canvas, spec: FieldSpec) -> list[int]:
    """The printed part of a field; returns the box the writing goes in."""
    x, top, lw = canvas.px(spec.x), canvas.px(spec.y), canvas.line_width()
    if spec.layout == "comb":
        cell_w, cell_h = canvas.px(COMB_CELL[0]), canvas.px(COMB_CELL[1])
        cells = int(spec.size)
        canvas.draw.rectangle([x, top, x + cell_w * cells, top + cell_h], outline=0, width=lw)
        for i in range(1, cells):
            canvas.draw.line([x + i * cell_w, top, x + i * cell_w, top + cell_h], fill=0, width=lw)
        return [x, top, cell_w * cells, cell_h]
    if spec.layout == "box":
        width, height = canvas.px(spec.size), canvas.px(BOX_HEIGHT)
        canvas.draw.rectangle([x, top, x + width, top + height], outline=0, width=lw)
        return [x, top, width, height]
    if spec.layout == "underline":
        width, line_y = canvas.px(spec.size), top + canvas.px(0.42)
        canvas.draw.line([x, line_y, x + width, line_y], fill=0, width=lw)
        return [x, top, width, line_y - top]
    return [x, top, canvas.px(0.3 * spec.size), canvas.px(0.4)]  # free / printed: no ruling


def _fill(
    canvas: _Canvas, bank: DigitBank, rng: np.random.Generator, spec: FieldSpec, darkness: float
) -> TruthField:
    x, top = canvas.px(spec.x), canvas.px(spec.y)
    if spec.layout == "printed":
        text = _digits_text(rng, int(spec.size), int(spec.size))
        box = canvas.text((x, top + canvas.px(0.32)), text, 12)
        return TruthField(text, "printed", "printed", box)
    if spec.layout == "comb":
        text = _digits_text(rng, int(spec.size), int(spec.size))
        cell_w, cell_h = canvas.px(COMB_CELL[0]), canvas.px(COMB_CELL[1])
        boxes = []
        for i, char in enumerate(text):
            h = int(round(cell_h * rng.uniform(0.6, 0.8)))
            digit = bank.sample(int(char), rng)
            w = int(round(digit.shape[1] * h / digit.shape[0]))
            jitter_x = int(rng.integers(-cell_w // 10, cell_w // 10 + 1))
            left = x + i * cell_w + (cell_w - w) // 2 + jitter_x
            bottom = top + cell_h - (cell_h - h) // 2 + int(rng.integers(-2, 3))
            boxes.append(canvas.write_digit(digit, left, bottom, h, darkness)[0])
        return TruthField(text, "handwritten", "comb", _ink_box(canvas, _union(boxes)))
    if spec.layout == "box":
        text, height = _digits_text(rng, 3, 8), canvas.px(BOX_HEIGHT * rng.uniform(0.55, 0.68))
        baseline = top + (canvas.px(BOX_HEIGHT) + height) // 2
    elif spec.layout == "underline":
        text, height = _digits_text(rng, 3, 8), canvas.px(rng.uniform(0.2, 0.28))
        baseline = top + canvas.px(0.42) + canvas.px(rng.uniform(-0.01, 0.03))
    else:  # free
        text, height = _digits_text(rng, 2, int(spec.size)), canvas.px(rng.uniform(0.2, 0.3))
        baseline = top + canvas.px(0.34)
    start = x + canvas.px(0.12 if spec.layout != "free" else 0.0)
    box = _write_string(canvas, bank, rng, text, start, baseline, height, darkness)
    return TruthField(text, "handwritten", spec.layout, box)


def warp_scan(
    page: FormPage,
    rng: np.random.Generator,
    *,
    max_angle: float = 5.0,
    scale: tuple[float, float] = (0.9, 1.1),
    max_shift_in: float = 0.25,
    perspective: float = 0.02,
) -> FormPage:
    """The page as a scanner or phone sees it: rotated, scaled, shifted and with a
    perspective tilt (each corner moved by up to `perspective` of the page size); the
    truth boxes follow (bounding box of their moved corners)."""
    h, w = page.image.shape
    angle = float(rng.uniform(-max_angle, max_angle))
    factor = float(rng.uniform(*scale))
    similarity = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), angle, factor), [0, 0, 1]])
    shift = rng.uniform(-max_shift_in, max_shift_in, 2) * page.dpi
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-perspective, perspective, (4, 2)) * [w, h]
    tilted = (corners + jitter).astype(np.float32)
    matrix = np.asarray(cv2.getPerspectiveTransform(corners, tilted), np.float64)
    matrix = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]]) @ similarity @ matrix
    image = cv2.warpPerspective(page.image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                borderValue=255)  # fmt: skip
    moved = []
    for f in page.fields:
        x, y, bw, bh = f.box
        pts = np.float64([[[x, y]], [[x + bw, y]], [[x, y + bh]], [[x + bw, y + bh]]])
        pts = cv2.perspectiveTransform(pts, matrix).reshape(-1, 2)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        moved.append(TruthField(f.text, f.kind, f.layout, _box_from(x0, y0, x1, y1)))
    return FormPage(image=image, dpi=page.dpi, degradation=page.degradation, fields=moved)


if __name__ == "__main__":
    main()
