"""Grouping ink into digit fields and making the model crops.

Ink blobs (connected components left after ruled lines are erased) are assigned to the comb,
box or underline that holds them; the rest are grouped by proximity, shared height and
baseline into free-written numbers. Groups that look like printed words (mixed letter
heights), logos (solid blobs) or specks are dropped before any model sees them. Sizes are
in inches via the page's dpi so the rules hold from 150 to 600 dpi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ocrd.normalize import ink_from_paper, normalize_digit, normalize_line
from ocrd.types import Box, Field, Page
from ocrd.vision.cleanup import A4_LONG_SIDE_INCHES, CleanPage, clean_page, components
from ocrd.vision.kinds import classify_input
from ocrd.vision.scale import content_dpi, disagreement, scale_note
from ocrd.vision.structure import Frame, Structure, column_runs, find_structure

PRINTED_MAX_HEIGHT_IN = 0.16  # printed form text is 8-14 pt; handwriting is taller
MIN_DIGIT_HEIGHT_IN = 0.06
MIN_PAGE_SIDE = 8
MIN_CONTENT_DPI = 100  # clean_page takes < 100 dpi for a snapshot
ONE_GLYPH_ASPECT = 1.3  # one connected unit no wider than this is one digit, not a string
GROW = np.ones((3, 3), np.uint8)  # a blob's mask grown by its anti-aliased rim


@dataclass
class Blob:
    label: int
    x: int
    y: int
    w: int
    h: int
    area: int

    @property
    def x2(self) -> int:
        return self.x + self.w

    @property
    def y2(self) -> int:
        return self.y + self.h

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class Group:
    layout: str
    units: list[list[Blob]]  # one list of blobs per digit, left to right
    kind: str = "handwritten"


def find_fields(page: Page, input_kind: str = "auto") -> list[Field]:
    """Digit fields on a page, boxes in the page's own pixels, crops ready for the models.

    `input_kind` says what the image holds (`ocrd.vision.kinds`): "page" (a form: fields
    are searched for), "field" (one written number: read as one string), "digit", or
    "auto" (decided from the content)."""
    if min(page.image.shape[:2]) < MIN_PAGE_SIDE:
        return []  # a sliver cannot hold a digit
    kind = classify_input(page.image, page.dpi) if input_kind == "auto" else input_kind
    if kind in ("field", "digit"):
        return _whole_image_field(page, single=kind == "digit")
    clean = _clean_at_content_scale(page)
    fields = _fields_on(page, clean)
    if not fields and not clean.snapshot and page.dpi < 100:
        # Nothing page-like on a camera/screen image (72 dpi or none): a photographed or
        # drawn digit fills it. Read it as one drawing.
        fields = _fields_on(page, clean_page(page.image, page.dpi, snapshot=True))
    return fields


def _clean_at_content_scale(page: Page) -> CleanPage:
    """The cleaned page at the scale its content shows (`ocrd.vision.scale`); the tag only
    decides when the content cannot tell. A tag the content disagrees with is noted."""
    guess = page.dpi if page.dpi > 0 else max(page.image.shape[:2]) / A4_LONG_SIDE_INCHES
    shrunk: dict[int, np.ndarray] = {}  # the page shrunk once for both (300 dpi: by 2)
    measured = content_dpi(page.image, shrunk)
    if not disagreement(guess, measured):
        return clean_page(page.image, page.dpi, shrunk=shrunk)
    if page.dpi > 0:  # a missing tag is no news; a wrong one is worth a warning
        page.notes.append(f"page {page.number}: {scale_note(page.dpi, measured)}")
    return clean_page(page.image, max(MIN_CONTENT_DPI, int(round(measured))), shrunk=shrunk)


def _whole_image_field(page: Page, *, single: bool) -> list[Field]:
    """The whole image as one field. Its line crop is made exactly as the line model's real
    training lines were (`ink_from_paper` on the whole image), so what the model learnt
    from real cheque amounts carries over; digit crops come from the image's blobs."""
    clean = clean_page(page.image, page.dpi, snapshot=True)
    structure = Structure(frames=[], ink=clean.ink, binary=clean.binary)
    _count, labels, stats = components(structure.binary)
    blobs = _blobs(stats, clean)
    if not blobs:
        return []
    groups = [Group("single", [blobs])] if single else _snapshot_group(blobs)
    _x, _y, width, height = _extent(blobs)
    single = single or (len(groups[0].units) == 1 and width <= ONE_GLYPH_ASPECT * height)
    if single:  # one glyph-shaped unit: a digit after all
        groups = [Group("single", [blobs])]
    made = _make_field(groups[0], page, clean, structure, labels)
    if made is None:
        return []
    if not single:  # however its blobs group, a field image is read as one string
        made.layout = "field"
        made.line_crop = normalize_line(ink_from_paper(page.image))
    return [made]


def _fields_on(page: Page, clean: CleanPage) -> list[Field]:
    if clean.snapshot:
        structure = Structure(frames=[], ink=clean.ink, binary=clean.binary)
    else:
        structure = find_structure(clean.ink, clean.binary, clean.px_per_inch)
    _count, labels, stats = components(structure.binary)
    blobs = _blobs(stats, clean)
    if clean.snapshot:
        groups = _snapshot_group(blobs)
    else:
        groups = _structured_groups(structure.frames, blobs, clean.px_per_inch)
    fields = []
    for group in groups:
        made = _make_field(group, page, clean, structure, labels)
        if made is not None:
            fields.append(made)
    fields.sort(key=lambda f: (f.box.y // 20, f.box.x))
    return fields


def _blobs(stats: np.ndarray, clean: CleanPage) -> list[Blob]:
    """Components big enough to be part of a digit (specks and dust dropped)."""
    min_side = 0.035 * clean.px_per_inch if not clean.snapshot else 2
    # Vectorised: a page has tens of thousands of specks, a Python loop over them cost ~15 ms.
    sides = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    kept = np.flatnonzero((sides >= min_side) & (stats[1:, cv2.CC_STAT_AREA] >= 4)) + 1
    return [Blob(int(label), *(int(v) for v in stats[label, :5])) for label in kept]


def _snapshot_group(blobs: list[Blob]) -> list[Group]:
    """A small image is one field: the whole drawing (a single digit or a short number)."""
    if not blobs:
        return []
    tallest = max(b.h for b in blobs)
    kept = [b for b in blobs if b.h >= 0.25 * tallest or b.area >= 0.1 * max(x.area for x in blobs)]
    units = _units(kept)
    return [Group("single" if len(units) == 1 else "free", units)]


def _structured_groups(frames: list[Frame], blobs: list[Blob], ppi: float) -> list[Group]:
    free = set(range(len(blobs)))
    groups = []
    centres_x = np.array([b.cx for b in blobs], np.float32)
    centres_y = np.array([b.cy for b in blobs], np.float32)
    slack = 0.05 * ppi
    # Boxes and combs enclose their ink: every blob inside belongs to the field.
    for frame in frames:
        if frame.layout == "underline":
            continue
        inside = (
            (centres_x >= frame.x - slack)
            & (centres_x <= frame.x + frame.w + slack)
            & (centres_y >= frame.y - slack)
            & (centres_y <= frame.y + frame.h + slack)
        )
        members = [int(i) for i in np.flatnonzero(inside) if int(i) in free]
        free -= {i for i in members if _is_side(blobs[i], frame, ppi)}
        members = [i for i in members if not _is_side(blobs[i], frame, ppi)]
        if not members:
            continue
        free -= set(members)
        chosen = [blobs[i] for i in members]
        units = _comb_units(chosen, frame) if frame.layout == "comb" else _units(chosen)
        if units:
            groups.append(Group(frame.layout, units))
    # The rest is grouped by proximity; a group sitting on an underline is an underlined field.
    underlines = [f for f in frames if f.layout == "underline"]
    for members in _cluster([blobs[i] for i in sorted(free)], ppi):
        group = _free_group(members, ppi)
        if group is None:
            continue
        if group.kind == "handwritten" and any(_on_line(group, f, ppi) for f in underlines):
            group.layout = "underline"
        groups.append(group)
    return groups


def _is_side(blob: Blob, frame: Frame, ppi: float) -> bool:
    """A frame side that survived line removal (too faint or broken to be detected)."""
    at_edge = min(abs(blob.cx - frame.x), abs(blob.cx - (frame.x + frame.w))) <= 0.05 * ppi
    return at_edge and blob.h >= 0.8 * frame.h and blob.w <= 0.06 * ppi


def _on_line(group: Group, line: Frame, ppi: float) -> bool:
    x, y, w, h = _extent([b for unit in group.units for b in unit])
    centre = x + w / 2
    return line.x <= centre <= line.x + line.w and line.y - 0.2 * ppi <= y + h <= line.y + 0.1 * ppi


def _comb_units(blobs: list[Blob], frame: Frame) -> list[list[Blob]]:
    """One unit per non-empty comb cell. A digit that spills over a divider is cut in two
    when the divider is erased: the cut-off piece goes back to the digit it touches across
    the divider; other small pieces at a divider are the neighbour's spill and are dropped."""
    cells = frame.cells
    reach = max(3, min(b - a for a, b in cells) // 10) if cells else 3
    # Each blob joins one cell (neighbouring cells share their divider column); ink that
    # spills past the comb's ends joins the end cell.
    starts = np.array([a for a, _ in cells[1:]], np.float32)
    cell_of = np.searchsorted(starts, [b.cx for b in blobs], side="right")
    members = [
        _drop_specks([b for b, c in zip(blobs, cell_of, strict=True) if c == i])
        for i in range(len(cells))
    ]
    mains = [max(m, key=lambda b: b.area) if m else None for m in members]
    units: list[list[Blob]] = [[main] if main else [] for main in mains]
    for index, (a, z) in enumerate(cells):
        main = mains[index]
        for blob in members[index]:
            if blob is main:
                continue
            at_left, at_right = blob.x - a <= reach, z - blob.x2 <= reach
            if blob.area >= 0.5 * main.area or not (at_left or at_right):
                units[index].append(blob)
                continue
            side = index - 1 if at_left else index + 1
            if 0 <= side < len(cells) and _touches_across(blob, mains[side], cells[side], reach):
                units[side].append(blob)
    return [unit for unit in units if unit]


def _touches_across(piece: Blob, main: Blob | None, cell: tuple[int, int], reach: int) -> bool:
    """Whether `main` reaches the divider `piece` sits against, at the same height."""
    if main is None:
        return False
    a, z = cell
    near_divider = main.x - a <= reach if piece.cx < a else z - main.x2 <= reach
    same_rows = min(piece.y2, main.y2) - max(piece.y, main.y) > 0
    return near_divider and same_rows


def _drop_specks(blobs: list[Blob]) -> list[Blob]:
    if not blobs:
        return blobs
    tallest = max(max(b.h, b.w) for b in blobs)
    return [b for b in blobs if max(b.h, b.w) >= 0.3 * tallest]


def _units(blobs: list[Blob]) -> list[list[Blob]]:
    """Digit units: blobs overlapping horizontally are pieces of one digit, and a small
    fragment right beside a digit (a broken stroke) joins it; lone specks are dropped."""
    units: list[list[Blob]] = []
    spans: list[tuple[int, int]] = []  # (left, right) of each unit, kept as it grows
    for blob in sorted(blobs, key=lambda b: b.x):
        if units:
            x0, x1 = spans[-1]
            overlap = min(x1, blob.x2) - max(x0, blob.x)
            if overlap >= 0.5 * min(blob.w, x1 - x0):
                units[-1].append(blob)
                spans[-1] = (min(x0, blob.x), max(x1, blob.x2))
                continue
        units.append([blob])
        spans.append((blob.x, blob.x2))
    if not units:
        return units
    heights = [_extent(u)[3] for u in units]
    tallest = max(heights)
    merged: list[list[Blob]] = []
    fragments = []
    for unit, height in zip(units, heights, strict=True):
        (fragments if height < 0.45 * tallest else merged).append(unit)
    for fragment in fragments:
        host = _nearest(fragment, merged)
        if host is not None and _gap(fragment, host) <= 0.2 * tallest:
            host.extend(fragment)
        elif _extent(fragment)[3] >= 0.3 * tallest:
            merged.append(fragment)
    return sorted(merged, key=lambda u: _extent(u)[0])


def _gap(a: list[Blob], b: list[Blob]) -> float:
    ax, _, aw, _ = _extent(a)
    bx, _, bw, _ = _extent(b)
    return max(ax, bx) - min(ax + aw, bx + bw)


def _nearest(unit: list[Blob], others: list[list[Blob]]) -> list[Blob] | None:
    return min(others, key=lambda other: _gap(unit, other), default=None)


def _cluster(blobs: list[Blob], ppi: float) -> list[list[Blob]]:
    """Link blobs on a shared baseline that are close left-to-right (vectorised pairs)."""
    if not blobs:
        return []
    x = np.array([b.x for b in blobs], np.float32)
    y = np.array([b.y for b in blobs], np.float32)
    x2 = np.array([b.x2 for b in blobs], np.float32)
    y2 = np.array([b.y2 for b in blobs], np.float32)
    h = y2 - y
    v_overlap = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y[:, None], y[None, :])
    h_gap = np.maximum(x[:, None], x[None, :]) - np.minimum(x2[:, None], x2[None, :])
    taller = np.maximum(h[:, None], h[None, :])
    shorter = np.minimum(h[:, None], h[None, :])
    linked = (v_overlap >= 0.45 * shorter) & (h_gap <= np.minimum(0.9 * taller, 0.35 * ppi))
    parent = list(range(len(blobs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(linked, 1)), strict=True):
        parent[root(int(i))] = root(int(j))
    clusters: dict[int, list[Blob]] = {}
    for i, blob in enumerate(blobs):
        clusters.setdefault(root(i), []).append(blob)
    return list(clusters.values())


def _free_group(blobs: list[Blob], ppi: float) -> Group | None:
    """A free-standing cluster, or None when it is not a number (words, logos, specks)."""
    units = _units(blobs)
    if not units:
        return None
    extents = [_extent(u) for u in units]
    heights = np.array([e[3] for e in extents], np.float32)
    bottoms = np.array([e[1] + e[3] for e in extents], np.float32)
    tallest = float(heights.max())
    if tallest < MIN_DIGIT_HEIGHT_IN * ppi or tallest > 1.2 * ppi:
        return None
    short = heights < 0.8 * tallest
    if short.sum() >= 2 and float(np.mean(short)) > 0.3:
        return None  # lower-case letters beside capitals/ascenders: printed words
    if len(units) <= 2 and any(_is_solid(u, ppi) for u in units):
        return None  # filled shapes: logos, stamps
    median = float(np.median(heights))
    uniform = (heights.max() - heights.min()) <= 0.15 * median and np.std(bottoms) <= 0.1 * median
    if median < PRINTED_MAX_HEIGHT_IN * ppi:
        # Print-sized: a number only when every character has the same height (lining
        # figures) and it is more than a short word ("no", "of").
        if uniform and len(units) >= 3:
            return Group("printed", units, kind="printed")
        return None
    if len(units) == 1 and tallest < 0.12 * ppi:
        return None  # a lone small mark (punctuation, a dot, a tick)
    return Group("free", units)


def _is_solid(unit: list[Blob], ppi: float) -> bool:
    """Blots and logos: mostly filled, or filled-ish and bigger than a written digit."""
    x, y, w, h = _extent(unit)
    fill = sum(b.area for b in unit) / float(w * h)
    # A thick "1" is a filled bar too: only blobs of some width count.
    return (fill > 0.75 and w > 0.5 * h) or (fill > 0.5 and min(w, h) > 0.45 * ppi)


def _extent(unit: list[Blob]) -> tuple[int, int, int, int]:
    if len(unit) == 1:  # most units are one blob
        blob = unit[0]
        return blob.x, blob.y, blob.w, blob.h
    x0 = min(b.x for b in unit)
    y0 = min(b.y for b in unit)
    x1 = max(b.x2 for b in unit)
    y1 = max(b.y2 for b in unit)
    return x0, y0, x1 - x0, y1 - y0


def _make_field(
    group: Group, page: Page, clean: CleanPage, structure: Structure, labels: np.ndarray
) -> Field | None:
    ink = structure.ink
    blobs = [b for unit in group.units for b in unit]
    box = _extent(blobs)
    line_crop = normalize_line(_masked_crop(ink, labels, blobs, box))
    digit_crops, digit_boxes = [], []
    typical = _typical_digit_width(group)
    for unit in group.units:
        unit_box = _extent(unit)
        if group.layout == "comb" and structure.dividers is not None:
            reach = max(3, int(0.03 * clean.px_per_inch))  # room for the divider beside it
            wide = (unit_box[0] - reach, unit_box[1], unit_box[2] + 2 * reach, unit_box[3])
            crop = _masked_crop(ink, labels, unit, wide)
            crop = _restore_divider_contact(crop, wide, clean, structure.dividers, reach)
        else:
            crop = _masked_crop(ink, labels, unit, unit_box)
        pieces = 1 if group.layout == "comb" else _pieces(unit_box[2], typical, group.kind)
        for piece, piece_box in _split_touching(crop, unit_box, max(1, min(pieces, 4))):
            digit_crops.append(normalize_digit(piece))
            digit_boxes.append(_to_page_box(piece_box, clean, page.image.shape))
    return Field(
        page=page.number,
        box=_to_page_box(box, clean, page.image.shape),
        kind=group.kind,  # type: ignore[arg-type]
        layout=group.layout,
        line_crop=line_crop,
        digit_crops=digit_crops,
        digit_boxes=digit_boxes,
    )


def _restore_divider_contact(
    crop: np.ndarray,
    box: tuple[int, int, int, int],
    clean: CleanPage,
    dividers: np.ndarray,
    reach: int,
) -> np.ndarray:
    """Give a comb digit back the divider pixels it was drawn over.

    A 0 drawn against a divider loses the side that lay on the rule when the rule is
    erased. In every row where the unerased ink runs from the divider into the digit's cell
    (the stroke touches or widens the rule there), the divider pixels and the ink just inside
    the cell are put back; short gaps between such rows (a stroke exactly on the rule) are
    bridged. The rest of the rule stays out, and a digit merely near it gains nothing.
    `reach` is how far into the cell (pixels) the ink is put back."""
    x, y, w, h = box
    y0, x0 = max(0, y - 1), max(0, x - 1)
    y1, x1 = min(dividers.shape[0], y + h + 1), min(dividers.shape[1], x + w + 1)
    band = dividers[y0:y1, x0:x1] > 0  # same window as _masked_crop's
    if not band.any():
        return crop
    original = clean.binary[y0:y1, x0:x1] > 0
    own_columns = np.flatnonzero((crop > 0).any(axis=0))
    centre = own_columns.mean() if len(own_columns) else crop.shape[1] / 2
    restore = np.zeros_like(band)
    for first, last in column_runs(band.any(axis=0)):
        if last < centre:  # a divider left of the digit: the cell is to its right
            inside = slice(last + 1, min(band.shape[1], last + 1 + reach))
            contact = original[:, last + 1 : last + 3]
        else:
            inside = slice(max(0, first - reach), first)
            contact = original[:, max(0, first - 2) : first]
        if contact.shape[1] < 2:
            continue
        rows = _bridge(contact.all(axis=1), max(2, int(0.35 * h)))
        restore[rows, first : last + 1] = band[rows, first : last + 1]
        restore[rows, inside] |= original[rows, inside]
    patched = crop.copy()
    patched[restore] = clean.ink[y0:y1, x0:x1][restore]
    return patched


def _bridge(rows: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False no longer than max_gap that lie between two True rows."""
    hits = np.flatnonzero(rows)
    filled = rows.copy()
    for a, b in zip(hits[:-1], hits[1:], strict=True):
        if 1 < b - a <= max_gap + 1:
            filled[a:b] = True
    return filled


def _typical_digit_width(group: Group) -> float:
    """Width one printed figure takes (lining figures share one width)."""
    return max(1.0, float(np.median([_extent(u)[2] for u in group.units])))


def _pieces(width: int, typical: float, kind: str) -> int:
    """How many touching digits a blob holds. Only printed figures (one shared width) are
    cut; on the generated benchmark, cutting wide handwriting cost more digits than it won
    (wide single digits are common) - the sequence model reads touching handwriting."""
    return int(width / typical + 0.3) if kind == "printed" else 1


def _split_touching(
    crop: np.ndarray, box: tuple[int, int, int, int], pieces: int
) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Cut a blob of `pieces` touching digits at the faintest columns near even spacing."""
    x, y, w, h = box
    if pieces <= 1:
        return [(crop, box)]
    profile = crop[:, 1:-1].astype(np.float32).sum(axis=0)  # crop has a 1-pixel margin
    cuts = [0]
    for k in range(1, pieces):
        ideal = k * w / pieces
        lo, hi = int(ideal - w / (4 * pieces)), int(ideal + w / (4 * pieces)) + 1
        lo, hi = max(cuts[-1] + 1, lo), min(w - 1, hi)
        cuts.append(lo + int(np.argmin(profile[lo:hi])) if hi > lo else int(ideal))
    cuts.append(w)
    result = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        part = crop[:, a + 1 : b + 1]
        result.append((part, (x + a, y, b - a, h)))
    return result


def _masked_crop(
    ink: np.ndarray, labels: np.ndarray, blobs: list[Blob], box: tuple[int, int, int, int]
) -> np.ndarray:
    """The ink of exactly these blobs (neighbours and erased lines stay out), 1 px margin."""
    x, y, w, h = box
    y0, x0 = max(0, y - 1), max(0, x - 1)
    y1, x1 = min(ink.shape[0], y + h + 1), min(ink.shape[1], x + w + 1)
    region = labels[y0:y1, x0:x1]
    mask = np.zeros(region.shape, bool)
    for blob in blobs:
        mask |= region == blob.label  # (a boolean OR is ~3x faster than masked assignment)
    mask = cv2.dilate(mask.view(np.uint8), GROW)
    return ink[y0:y1, x0:x1] * mask


def _to_page_box(box: tuple[int, int, int, int], clean: CleanPage, shape: tuple[int, ...]) -> Box:
    """Working (deskewed) box -> bounding box of its corners on the page as stored."""
    x, y, w, h = box
    (a, b, c), (d, e, f) = clean.to_page.tolist()
    xs, ys = [], []
    for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h)):
        xs.append(a * px + b * py + c)
        ys.append(d * px + e * py + f)
    x0, y0 = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
    x1, y1 = min(shape[1], math.ceil(max(xs))), min(shape[0], math.ceil(max(ys)))
    return Box(int(x0), int(y0), int(max(1, x1 - x0)), int(max(1, y1 - y0)))
