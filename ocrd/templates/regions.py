"""Reading a template field from its aligned region when vision found no field there.

Vision looks for fields over the whole page, so a number can be missed there: clustered with
its printed label into something word-like, a short stroke dropped as a mark, a frame not
seen on a skewed or blurred scan. The template says where every field is, so the region of
each field that none of the page's fields falls in is warped out of the page into template
pixels (rotation, scale and perspective undone) with a small margin, and vision runs on that
crop alone: the field's own frame, no neighbours. When it still finds no field but ink is
left inside the field once its rulings are erased, the inside is read as one written number
(`input_kind="field"`). Either way the crops go to the models with every other field of the
page; a region with no ink gives no field (the template's field is then an empty result).
"""

from __future__ import annotations

import cv2
import numpy as np

from ocrd.templates.align import PageMatch
from ocrd.templates.apply import field_at, template_dpi
from ocrd.templates.model import Template, TemplateField
from ocrd.types import Box, Field, Page
from ocrd.vision import find_fields
from ocrd.vision.cleanup import clean_page, components
from ocrd.vision.structure import find_structure

REGION_MARGIN_IN = 0.12  # around the field: its frame and writing that spills over it
REGION_DPI = 300  # the crop's resolution at most (vision works at 150)
INSET_IN = 0.04  # ink this close to the field's edge is its frame, not writing
MIN_INK_HEIGHT_IN = 0.08  # a component this tall inside the field is writing


def missed_fields(page: Page, match: PageMatch, fields: list[Field]) -> list[Field]:
    """Fields read from the aligned regions of the template fields that none of `fields`
    (boxes in `page.image` pixels) falls in; boxes in `page.image` pixels."""
    template = match.template
    centres = np.float64([[f.box.x + f.box.w / 2, f.box.y + f.box.h / 2] for f in fields])
    mapped = match.to_template(centres) if fields else np.zeros((0, 2))
    taken = {field_at(template, x, y) for x, y in mapped}
    found = []
    for index, tfield in enumerate(template.fields):
        if index not in taken:
            found += read_region(page, match, tfield)
    return found


def read_region(page: Page, match: PageMatch, tfield: TemplateField) -> list[Field]:
    """The fields in one template field's aligned region (none when it holds no ink)."""
    crop, to_crop, inner = _aligned_crop(page, match, tfield)
    dpi = int(round(crop_dpi(match.template)))
    inside = [f for f in find_fields(Page(page.number, crop, dpi), "page") if _holds(inner, f)]
    if not inside and tfield.layout != "printed":
        inside = _written_inside(page.number, crop, dpi, inner)
    back = np.linalg.inv(to_crop)
    return [_mapped(f, back, page.image.shape) for f in inside]


def crop_dpi(template: Template) -> float:
    return min(template_dpi(template), REGION_DPI)


def _aligned_crop(
    page: Page, match: PageMatch, tfield: TemplateField
) -> tuple[np.ndarray, np.ndarray, Box]:
    """The field's region warped out of the page, the page -> crop homography and the
    field's box in crop pixels."""
    dpi = template_dpi(match.template)
    scale = crop_dpi(match.template) / dpi
    margin = REGION_MARGIN_IN * dpi
    b = tfield.box
    x0, y0 = b.x - margin, b.y - margin
    shift = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale], [0, 0, 1]])
    to_crop = shift @ match.homography
    size = (int(round((b.w + 2 * margin) * scale)), int(round((b.h + 2 * margin) * scale)))
    crop = cv2.warpPerspective(
        page.image, to_crop, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    inner = Box(int(round(margin * scale)), int(round(margin * scale)),
                int(round(b.w * scale)), int(round(b.h * scale)))  # fmt: skip
    return crop, to_crop, inner


def _holds(inner: Box, f: Field) -> bool:
    cx, cy = f.box.x + f.box.w / 2, f.box.y + f.box.h / 2
    return inner.x <= cx <= inner.x + inner.w and inner.y <= cy <= inner.y + inner.h


def _written_inside(number: int, crop: np.ndarray, dpi: int, inner: Box) -> list[Field]:
    """Ink vision did not take for a field (a lone stroke, a word-like scrawl) inside the
    field once its rulings are erased: read the inside as one written number."""
    clean = clean_page(crop, dpi)
    structure = find_structure(clean.ink, clean.binary, clean.px_per_inch)
    ppi = clean.px_per_inch
    inset = INSET_IN * ppi
    x0, y0 = inner.x * clean.scale + inset, inner.y * clean.scale + inset
    x1 = (inner.x + inner.w) * clean.scale - inset
    y1 = (inner.y + inner.h) * clean.scale - inset
    if x1 - x0 < 2 or y1 - y0 < 2:
        return []
    _count, _labels, stats = components(structure.binary)
    left, top, width, height = (stats[1:, i] for i in range(4))
    cx, cy = left + width / 2, top + height / 2
    writing = (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1) & (height >= MIN_INK_HEIGHT_IN * ppi)
    if not writing.any():
        return []
    bright = structure.ink[int(y0) : int(y1), int(x0) : int(x1)]
    inside = Page(number, 255 - bright, int(round(ppi)))
    found = find_fields(inside, "field")
    offset = np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1]])
    to_crop = np.vstack([clean.to_page, [0, 0, 1]]) @ offset  # inside -> working -> crop
    return [_mapped(f, to_crop, crop.shape) for f in found]


def _mapped(f: Field, transform: np.ndarray, shape: tuple[int, ...]) -> Field:
    """`f` with its boxes carried through a homography (bounding boxes of the corners)."""
    f.box = _box_through(f.box, transform, shape)
    f.digit_boxes = [_box_through(b, transform, shape) for b in f.digit_boxes]
    return f


def _box_through(box: Box, transform: np.ndarray, shape: tuple[int, ...]) -> Box:
    x, y, w, h = box.x, box.y, box.w, box.h
    corners = np.float64([[[x, y]], [[x + w, y]], [[x, y + h]], [[x + w, y + h]]])
    pts = cv2.perspectiveTransform(corners, transform).reshape(-1, 2)
    height, width = shape[:2]
    x0, y0 = np.clip(np.floor(pts.min(axis=0)), 0, [width - 1, height - 1])
    x1, y1 = np.clip(np.ceil(pts.max(axis=0)), 0, [width, height])
    return Box(int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0)))
