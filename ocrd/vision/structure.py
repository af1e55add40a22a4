"""Form structure: ruled lines, underlines, boxes and comb fields; removing them cleanly.

Lines are found by morphological opening with long thin kernels. A vertical run only counts
as a ruled line when both its ends meet a horizontal line (a box side or comb divider), so a
tall handwritten "1" is never mistaken for one. After the lines are erased, strokes that
crossed a horizontal line are bridged back with a short closing across it, so digits are not
cut; vertical rules are not bridged, so digits spilling across a comb divider stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ocrd.vision.cleanup import components


@dataclass
class Frame:
    """A ruled structure that holds one field, in working (deskewed) pixels."""

    layout: str  # "comb" / "box" / "underline"
    x: int
    y: int
    w: int
    h: int
    cells: list[tuple[int, int]] = field(default_factory=list)  # comb: (x0, x1) per cell


@dataclass
class Structure:
    frames: list[Frame]
    ink: np.ndarray  # ink-bright image with ruled lines erased (crossing strokes kept)
    binary: np.ndarray  # its 0/255 mask
    dividers: np.ndarray | None = None  # 0/255 columns of erased frame sides / comb dividers


def find_structure(ink: np.ndarray, binary: np.ndarray, px_per_inch: float) -> Structure:
    """Detect ruled lines and frames, and return the page with the lines removed.

    Detection runs on a 2x max-pooled copy (lines survive pooling, and it is 4x fewer
    pixels); the validated line masks then pick the lines out at full working resolution.
    """
    factor = 2 if px_per_inch >= 120 else 1
    small = _max_pool(binary, factor)
    ppi = px_per_inch / factor
    # Longer than any handwritten stroke: a 7's bar or a 2's base never reaches 0.6 in.
    horizontal = _thin_only(_open(small, (max(8, int(0.6 * ppi)), 1)), small, ppi)
    vertical_runs = _open(small, (1, max(6, int(0.16 * ppi))))
    vertical = _ruled_verticals(vertical_runs, horizontal, ppi)
    found, strokes = _frames(horizontal, vertical, ppi)
    frames = [_scaled(frame, factor) for frame in found]
    for x0, y0, x1, y1 in strokes:  # handwriting that merely looked like a rule
        vertical[max(0, y0) : y1, max(0, x0) : x1] = 0
    if factor > 1:
        horizontal = _refine(horizontal, binary, (max(8, int(0.3 * px_per_inch)), 1), factor)
    vertical = _divider_columns(binary, frames, px_per_inch)
    clean_binary, erased = _erase_lines(binary, horizontal, vertical, px_per_inch)
    clean_ink = cv2.bitwise_and(ink, cv2.bitwise_not(erased))
    return Structure(frames=frames, ink=clean_ink, binary=clean_binary, dividers=vertical)


def _divider_columns(binary: np.ndarray, frames: list[Frame], px_per_inch: float) -> np.ndarray:
    """The columns of each frame side and comb divider, at full working resolution.

    Only columns inked over most of the frame's height are rule: a digit stroke hugging a
    divider (the side of a 0 drawn against it) is not, so it survives the erasing."""
    mask = np.zeros_like(binary)
    search = max(3, int(round(0.03 * px_per_inch)))
    for frame in frames:
        if frame.layout == "underline":
            continue
        edges = {frame.x, frame.x + frame.w - 1} | {x for cell in frame.cells for x in cell}
        y0, y1 = frame.y, min(binary.shape[0], frame.y + frame.h)
        for edge in edges:
            lo, hi = max(0, edge - search), min(binary.shape[1], edge + search + 1)
            coverage = (binary[y0:y1, lo:hi] > 0).mean(axis=0)
            columns = np.flatnonzero(coverage > 0.6)
            if len(columns):
                mask[y0:y1, lo + columns.min() : lo + columns.max() + 1] = 255
    return mask


def _max_pool(binary: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return binary
    h, w = binary.shape[0] // factor, binary.shape[1] // factor
    # Area-averaging by an exact integer factor is OpenCV's fast path; any ink -> ink.
    mean = cv2.resize(binary[: h * factor, : w * factor], (w, h), interpolation=cv2.INTER_AREA)
    return cv2.threshold(mean, 0, 255, cv2.THRESH_BINARY)[1]


def _refine(mask: np.ndarray, binary: np.ndarray, run: tuple[int, int], factor: int) -> np.ndarray:
    """Full-resolution line pixels: runs in `binary` that lie on the pooled line mask (scaled
    up, grown by a pixel).

    A one-row kernel opens each row on its own: only the rows the mask touches (a tenth of
    a form's rows) are worth opening, and only there is the mask scaled up and grown."""
    up_height, up_width = mask.shape[0] * factor, mask.shape[1] * factor
    touched = np.zeros(binary.shape[0], bool)  # rows of the grown, scaled-up mask with ink
    up_rows = np.repeat(mask.max(axis=1) > 0, factor)
    touched[:up_height] = up_rows
    touched[1:up_height] |= up_rows[:-1]
    touched[: up_height - 1] |= up_rows[1:]
    refined = np.zeros_like(binary)
    grow = np.ones((3, 3), np.uint8)
    for first, last in _merged(column_runs(touched), 8):
        # The scaled-up rows around the band (a row's growth reaches one row either side).
        lo, hi = max(0, first - 1) // factor, min(mask.shape[0], (last + 2) // factor + 1)
        up = cv2.resize(
            mask[lo:hi], (up_width, (hi - lo) * factor), interpolation=cv2.INTER_NEAREST
        )
        grown = cv2.dilate(up, grow)[first - lo * factor : last + 1 - lo * factor]
        full = np.zeros((last + 1 - first, binary.shape[1]), np.uint8)
        full[: grown.shape[0], :up_width] = grown
        rows = slice(first, last + 1)
        refined[rows] = cv2.bitwise_and(_open(binary[rows], run), full)
    return refined


def _scaled(frame: Frame, factor: int) -> Frame:
    if factor == 1:
        return frame
    cells = [(a * factor, b * factor + factor - 1) for a, b in frame.cells]
    return Frame(
        frame.layout, frame.x * factor, frame.y * factor, frame.w * factor, frame.h * factor, cells
    )


def _open(binary: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, size)
    return cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)


def _thin_only(horizontal: np.ndarray, binary: np.ndarray, px_per_inch: float) -> np.ndarray:
    """Keep ruled lines: thin runs with paper on at least one side. A run inside a solid
    shape (a logo, a blot) has ink along most of its length on both sides, or along nearly
    all of it on one; big digits hugging a comb's top rule cover about half of it."""
    count, labels, stats = components(horizontal)
    keep = []
    for i in range(1, count):
        x, y, w, h = (int(v) for v in stats[i, :4])
        if h > max(3, 0.06 * px_per_inch) and w < 12 * h:  # thick and not a long skewed rule
            continue
        above = float((binary[max(0, y - 2), x : x + w] > 0).mean())
        below = float((binary[min(binary.shape[0] - 1, y + h + 1), x : x + w] > 0).mean())
        if min(above, below) > 0.5 or max(above, below) > 0.85:
            continue
        keep.append(i)
    return _keep(labels, stats, keep)


def _ruled_verticals(runs: np.ndarray, horizontal: np.ndarray, px_per_inch: float) -> np.ndarray:
    """Keep vertical runs whose top and bottom both touch a horizontal line."""
    reach = max(2, int(0.03 * px_per_inch))
    near_h = cv2.dilate(horizontal, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 2 * reach + 1)))
    count, labels, stats = components(runs)
    keep = []
    for i in range(1, count):
        x, y, w, h, _ = stats[i]
        if w > 0.15 * px_per_inch:  # ruled lines are thin (a stroke may touch one)
            continue
        top = near_h[y, x : x + w].any()
        bottom = near_h[y + h - 1, x : x + w].any()
        if top and bottom:
            keep.append(i)
    return _keep(labels, stats, keep)


def _keep(labels: np.ndarray, stats: np.ndarray, keep) -> np.ndarray:
    """0/255 mask of the listed components, painted box by box (cheap when they are few)."""
    mask = np.zeros(labels.shape, np.uint8)
    for i in keep:
        x, y, w, h = (int(v) for v in stats[i, :4])
        mask[y : y + h, x : x + w][labels[y : y + h, x : x + w] == i] = 255
    return mask


def _frames(
    horizontal: np.ndarray, vertical: np.ndarray, px_per_inch: float
) -> tuple[list[Frame], list[tuple[int, int, int, int]]]:
    """Frames, plus the (x0, y0, x1, y1) spans of vertical runs that proved to be strokes
    (off a comb's regular grid), which must not be erased as lines."""
    frames, strokes = [], []
    joined = cv2.bitwise_or(horizontal, vertical)
    count, labels, stats = components(joined)
    for i in range(1, count):
        x, y, w, h, _ = stats[i]
        if w < 0.6 * px_per_inch:
            continue
        region_v = (
            vertical[y : y + h, x : x + w]
            & (labels[y : y + h, x : x + w] == i).astype(np.uint8) * 255
        )
        found = _vertical_positions(region_v)
        # Two rules joined by anything vertical make a frame, even if a side was too faint
        # to detect (the frame's ends count as its sides).
        if h < 0.1 * px_per_inch or not found:
            frames.extend(_underlines(horizontal[y : y + h, x : x + w], x, y, px_per_inch))
            continue
        grid, off_grid = _regular_grid(found, int(w), int(h))
        strokes.extend((x + a - 2, y, x + b + 3, y + h) for a, b in off_grid)
        if len(grid) >= 3:
            cells = [(x + a, x + b) for a, b in zip(grid[:-1], grid[1:], strict=True)]
            frames.append(Frame("comb", x, y, w, h, cells=cells))
        else:
            frames.append(Frame("box", x, y, w, h))
    return frames, strokes


def _regular_grid(
    found: list[int], width: int, height: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """Comb dividers are evenly spaced: fit the grid, fill in dividers a digit hid, and
    return vertical runs off the grid (a 7's stem touching both rules) as strokes.

    The cell count is the one whose even grid explains most of the vertical runs found
    (each grid line without a run costs half a point); cells are 0.4-2 times as wide as
    the comb is tall. The grid's start and pitch are refitted to the runs it matched.
    Without a good fit the frame is a box."""
    positions = sorted(set(found) | {0, width - 1})
    positions = [p for i, p in enumerate(positions) if i == 0 or p - positions[i - 1] > 2]
    found_at = np.asarray(positions, np.float64)
    # The grid spans the frame, or just the runs found (a digit stroke that lengthened a
    # rule past the comb's end makes the frame too wide); on a tie the runs' span wins.
    spans = [(min(found), max(found))] if len(found) >= 2 else []
    if not spans or spans[0][0] > 2 or spans[0][1] < width - 3:
        spans.append((0, width - 1))
    best_score, best_grid = 2.0, [0, width - 1]  # a plain box: both sides explained
    for cells in range(2, max(2, int((width - 1) / (0.4 * height))) + 1):
        # Each run explains at most one grid line: skip counts that cannot win.
        lines = cells + 1
        if min(lines, len(positions)) - 0.5 * max(0, lines - len(positions)) <= best_score:
            continue
        for first, last in spans:
            step = (last - first) / cells
            if step > 2 * height or step < 0.4 * height:
                continue
            score, grid = _best_fit(found_at, cells, first, step, best_score)
            if score > best_score:
                best_score, best_grid = score, grid
    on_grid = set(best_grid)
    off_grid = [(p, p) for p in found if p not in on_grid and 2 < p < width - 3]
    return best_grid, off_grid


def _best_fit(
    found: np.ndarray, cells: int, start: float, step: float, to_beat: float
) -> tuple[float, list[int]]:
    """The even grid from `start`, then refitted (least squares) to the runs it matched."""
    tolerance = max(2.0, 0.15 * step)
    score, grid, matched = _fit_grid(found, cells, start, step, tolerance)
    if score + 1 < to_beat:
        return score, grid  # refitting adds at most a line or two: not worth trying
    for _ in range(2):
        start, step = _refit(grid, matched)
        refit_score, refit_grid, refit_matched = _fit_grid(found, cells, start, step, tolerance)
        if refit_score < score or refit_grid[-1] <= refit_grid[0]:
            break
        score, grid, matched = refit_score, refit_grid, refit_matched
    return score, grid


def _fit_grid(
    found: np.ndarray, cells: int, start: float, step: float, tolerance: float
) -> tuple[float, list[int], np.ndarray]:
    """Score (runs matched, minus half per grid line without one), the grid lines (the
    matched run, else the even position) and which lines matched a run."""
    ideal = start + step * np.arange(cells + 1)
    distance = np.abs(found[None, :] - ideal[:, None])
    nearest = distance.argmin(axis=1)
    matched = distance[np.arange(cells + 1), nearest] <= tolerance
    grid = np.where(matched, found[nearest], np.round(ideal)).astype(int).tolist()
    return float(matched.sum()) - 0.5 * float((~matched).sum()), grid, matched


def _refit(grid: list[int], matched: np.ndarray) -> tuple[float, float]:
    """Least-squares start and pitch of the grid lines that matched a run."""
    at = np.asarray(grid, np.float64)
    k, p = np.flatnonzero(matched).astype(np.float64), at[matched]
    if len(k) < 3:
        return float(at[0]), float((at[-1] - at[0]) / (len(grid) - 1))
    k_mean, p_mean = k.mean(), p.mean()
    step = float(((k - k_mean) * (p - p_mean)).sum() / ((k - k_mean) ** 2).sum())
    return float(p_mean - step * k_mean), step


def _vertical_positions(region: np.ndarray) -> list[int]:
    """x centres of the vertical lines in a frame's region."""
    columns = (region > 0).sum(axis=0) > 0.5 * region.shape[0]
    return [(first + last) // 2 for first, last in column_runs(columns)]


def column_runs(columns: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in a boolean column mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], columns.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _underlines(region: np.ndarray, x0: int, y0: int, px_per_inch: float) -> list[Frame]:
    """Each separate horizontal line in a component without sides is an underline."""
    rows = np.flatnonzero(region.any(axis=1))
    frames = []
    if not len(rows):
        return frames
    cols = np.flatnonzero(region.any(axis=0))
    return [
        Frame(
            "underline",
            x0 + int(cols[0]),
            y0 + int(rows[0]),
            int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1),
        )
    ]


def _erase_lines(
    binary: np.ndarray, horizontal: np.ndarray, vertical: np.ndarray, px_per_inch: float
) -> tuple[np.ndarray, np.ndarray]:
    """Remove ruled lines; restore the pixels where a stroke crosses a horizontal line.
    Returns the cleaned mask and the 0/255 mask of the ink erased.

    Vertical rules (box sides, comb dividers) are not bridged: ink on either side of a comb
    divider belongs to different digits, even when a stroke spills across."""
    grow = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    h_mask = cv2.dilate(horizontal, grow)
    v_mask = cv2.dilate(vertical, np.ones((1, 3), np.uint8))  # its columns +- anti-aliasing
    lines = cv2.bitwise_or(h_mask, v_mask)
    # Only rows with a line change: elsewhere the ink stays and nothing is erased.
    line_rows = _merged(column_runs(lines.max(axis=1) > 0), 8)
    remaining = binary.copy()
    for first, last in line_rows:
        rows = slice(first, last + 1)
        remaining[rows] = cv2.bitwise_and(binary[rows], cv2.bitwise_not(lines[rows]))
    # Ink directly above and below a horizontal line is a stroke crossing it.
    # Printed rules are <= ~0.02 in thick; +3 px for the 3x3 growth and anti-aliasing.
    reach = max(6, int(round(0.03 * px_per_inch)) + 5)
    clean = remaining.copy()
    # Restored pixels lie on a horizontal line: only the bands of its rows are worked on (a
    # pixel of the vertical closing depends on rows less than 2 x reach away).
    kernel, margin = np.ones((reach, 1), np.uint8), 2 * reach
    for first, last in _merged(column_runs(h_mask.max(axis=1) > 0), margin):
        lo, hi = max(0, first - margin), min(binary.shape[0], last + 1 + margin)
        inner, rows = slice(first - lo, last + 1 - lo), slice(first, last + 1)
        across_h = cv2.morphologyEx(remaining[lo:hi], cv2.MORPH_CLOSE, kernel)[inner]
        near_ink = cv2.dilate(binary[lo:hi], grow)[inner]  # the ink and its 1-pixel rim
        clean[rows] |= across_h & h_mask[rows] & cv2.bitwise_not(v_mask[rows]) & near_ink
    # 0/255 like the masks: OpenCV's bitwise ops are ~5x faster than numpy's boolean ones.
    erased = np.zeros_like(binary)
    for first, last in line_rows:
        rows = slice(first, last + 1)
        inked = cv2.bitwise_or(binary[rows], lines[rows])
        erased[rows] = cv2.bitwise_and(inked, cv2.compare(clean[rows], 0, cv2.CMP_EQ))
    return clean, erased


def _merged(runs: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Runs closer than `gap` joined into one (fewer, larger calls)."""
    merged: list[tuple[int, int]] = []
    for first, last in runs:
        if merged and first - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged
