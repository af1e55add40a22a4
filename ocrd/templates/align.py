"""Which template a page is, and where its pixels land on the template: ORB + RANSAC.

Both the reference page and each scanned page are reduced to FINGERPRINT_WIDTH pixels across
(a physical scale the same for every dpi), ORB keypoints are matched by Hamming distance with
Lowe's ratio test, and a homography is fitted with RANSAC. Printed titles, labels and rulings
give hundreds of consistent matches on the right template; another form's matches scatter
and fit few inliers. A homography handles rotation, scale, shift and a phone's perspective in
one model. Templates are tried likeliest first (a cheap ranking fit on a few keypoints per
cell), and the search stops at one that finds most of its rulings on the page's ink. Why ORB
and not AKAZE or page structure: see bench/templates.py and the README.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ocrd.templates.model import Fingerprint, Template
from ocrd.types import Box

FINGERPRINT_WIDTH = 800  # pixels across the page (~97 dpi on A4): 11-pt labels keep their corners
PAGE_FEATURES = 1000
TEMPLATE_FEATURES = 1600
GRID = (4, 8)  # columns, rows of the keypoint grid
RATIO = 0.8  # Lowe's ratio test
CANDIDATES = 4  # nearest descriptors kept per keypoint for the guided refit
GUIDED_PX = 6.0  # a candidate this close to where the first fit maps its keypoint is taken
GUIDED_DISTANCE = 64  # ... when its descriptor is at most this far (Hamming bits of 256)
RANSAC_PX = 3.0  # reprojection tolerance, fingerprint pixels
MIN_INLIERS = 12  # fewer consistent matches: not this template
MIN_SPREAD = 0.1  # inliers reaching less of the page's height (a letterhead match) ...
STRONG_RULING = 0.7  # ... must find this share of the ruled sides, not just MIN_RULING
MIN_RULING = 0.5  # share of the template's ruled sides that must lie on the page's ink
RULING_FOUND = 0.8  # a side is found when this share of its points lies on ink
DECISIVE_RULING = 0.75  # a template that finds this share of its ruled sides (other forms:
DECISIVE_INLIERS = 20  # 0.38 at most) with this many inliers is the page's: the rest are not tried
RULING_SHIFT = 3  # pixels (reduced page) the rulings are searched around the keypoint fit
INK_CONTRAST = 0.35  # a ruling pixel is this far from the paper towards the darkest ink
RULING_SAMPLES = 24  # points sampled along each ruled side
MAX_SCALE_CHANGE = 1.6  # a page more than this much larger or smaller is not a scan of it
MAX_TILT = 0.25  # perspective: how much the mapped page's side lengths may differ
RANK_PAGE_PER_CELL = 8  # ranking the templates: the page's strongest keypoints per grid cell ...
RANK_TEMPLATE_PER_CELL = 20  # ... against the template's, k=2 and the ratio test, ...
RANK_PX = 6.0  # ... scored by the inliers of a similarity fit (rotation, scale, shift)
RANK_ITERS = 300  # RANSAC samples of the ranking fit (two points each)


@dataclass(frozen=True)
class PageMatch:
    """A page matched to a template: `homography` maps page pixels to template pixels."""

    template: Template
    homography: np.ndarray  # 3x3 float64
    inliers: int
    ruling: float = 1.0  # share of the template's ruled lines found on the page
    # per template field, the boxes (template pixels) of what is written in it; None: not
    # looked at (evidence.with_writing)
    writing: tuple[tuple[Box, ...] | None, ...] | None = None

    def to_template(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) page pixels -> (N, 2) template pixels."""
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, self.homography).reshape(-1, 2)

    def to_page(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(pts, np.linalg.inv(self.homography)).reshape(-1, 2)


def reduce(image: np.ndarray, width: int = FINGERPRINT_WIDTH) -> tuple[np.ndarray, float]:
    """The page `width` pixels across and the scale (reduced pixels per page pixel). A large
    page is first halved by area averaging until it is less than twice as wide (5 ms for a
    600-dpi A4 page, where averaging straight to `width` takes 17), then resized linearly:
    averaging every pixel keeps a noisy scan's speckle out of the keypoints (sampling one pixel in a
    few does not), and a 0.011-inch ruling is still 3 samples wide at 600 dpi."""
    height, page_width = image.shape[:2]
    scale = width / page_width
    size = (width, max(1, int(round(height * scale))))
    while image.shape[1] >= 2 * width:  # halved by area averaging (OpenCV's fast path)
        rows, cols = image.shape[0] // 2, image.shape[1] // 2
        image = cv2.resize(
            image[: 2 * rows, : 2 * cols], (cols, rows), interpolation=cv2.INTER_AREA
        )
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), scale


def _detect(small: np.ndarray, features: int) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB keypoints spread over the page: the strongest ones per cell of a GRID. Left to
    itself ORB spends most of them on the bold title and the logo, which other forms share."""
    # Three pyramid levels (1.44x) cover scans at 0.9-1.1 of the template's size and then some.
    orb = cv2.ORB_create(nfeatures=features * 2, scaleFactor=1.2, nlevels=3, fastThreshold=8)
    keypoints = orb.detect(small, None)
    if not keypoints:
        return np.zeros((0, 2), np.float32), None
    height, width = small.shape[:2]
    cols, rows = GRID
    per_cell = max(1, features // (cols * rows))
    xy = cv2.KeyPoint_convert(keypoints)
    response = np.array([k.response for k in keypoints], np.float32)
    cell = (xy[:, 1] * rows // height).astype(int) * cols + (xy[:, 0] * cols // width).astype(int)
    order = np.lexsort((-response, cell))  # by cell, strongest first
    rank = np.arange(len(order)) - np.searchsorted(cell[order], cell[order])
    kept = [keypoints[i] for i in order[rank < per_cell]]
    kept, descriptors = orb.compute(small, kept)
    points = np.float32([k.pt for k in kept]).reshape(-1, 2)
    return points, descriptors


def make_fingerprint(image: np.ndarray, fields: list[Box] | None = None) -> Fingerprint:
    """The reference page's keypoints, as stored in the template file; none from inside the
    `fields` (what was written there differs on every filled copy)."""
    small, scale = reduce(image)
    points, descriptors = _detect(small, TEMPLATE_FEATURES)
    if descriptors is not None and fields:
        keep = np.ones(len(points), bool)
        for box in fields:
            x0, y0 = (box.x + 0.1 * box.w) * scale, (box.y + 0.15 * box.h) * scale
            x1, y1 = (box.x + 0.9 * box.w) * scale, (box.y + 0.85 * box.h) * scale
            inside = (points[:, 0] > x0) & (points[:, 0] < x1)
            keep &= ~(inside & (points[:, 1] > y0) & (points[:, 1] < y1))
        points, descriptors = points[keep], descriptors[keep]
    if descriptors is None or len(points) < MIN_INLIERS:
        raise ValueError("the page has too little printed structure to align scans to it")
    return Fingerprint(small.shape[1], small.shape[0], points, descriptors)


class Matcher:
    """Matches pages against a fixed set of templates (built once, used from any thread: it
    keeps nothing per page)."""

    def __init__(self, templates: list[Template]) -> None:
        self.templates = list(templates)
        self._rank_sets = [_strongest(t.fingerprint, RANK_TEMPLATE_PER_CELL) for t in templates]

    def match(self, image: np.ndarray) -> PageMatch | None:
        """The template this page is a scan of, or None."""
        if not self.templates:
            return None
        small, scale = reduce(image)
        points, descriptors = _detect(small, PAGE_FEATURES)
        if descriptors is None or len(points) < MIN_INLIERS:
            return None
        ink: np.ndarray | None = None
        best: tuple[float, int, PageMatch] | None = None
        for template in self._candidates(points, descriptors, small.shape):
            found = _fit(points, descriptors, template, scale, small.shape)
            if found is None:
                continue
            homography, inliers, spread = found
            ink = _ink_mask(small) if ink is None else ink
            ruling, shift = _ruling_score(template, np.linalg.inv(homography), ink)
            if ruling < (MIN_RULING if spread >= MIN_SPREAD else STRONG_RULING):
                continue
            homography = homography @ np.linalg.inv(shift)  # the shift the rulings found
            if best is None or (ruling, inliers) > best[:2]:
                # page pixels -> reduced page -> reduced template -> template pixels
                to_small = np.diag([scale, scale, 1.0])
                factor = template.width / template.fingerprint.width
                full = np.diag([factor, factor, 1.0]) @ homography @ to_small
                best = (ruling, inliers, PageMatch(template, full, inliers, ruling))
            if ruling >= DECISIVE_RULING and inliers >= DECISIVE_INLIERS:
                break  # no other form finds nearly all of this one's rulings: stop looking
        return best[2] if best is not None else None

    def _candidates(
        self, points: np.ndarray, descriptors: np.ndarray, shape: tuple[int, ...]
    ) -> list[Template]:
        """The templates in the order to try them, the likeliest first. A cheap score ranks
        them (the page's strongest keypoints per cell against the template's, fitted with a
        similarity), so the full match mostly tries the page's own template first and stops
        there. None is left out: a hard scan's own template can score as low as another's."""
        if len(self.templates) == 1:
            return list(self.templates)
        keep = _cell_rank(points, shape) < RANK_PAGE_PER_CELL
        page = points[keep], descriptors[keep]
        scores = [_rank_score(page, subset) for subset in self._rank_sets]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])  # ties: the file order
        return [self.templates[i] for i in order]


def _cell_rank(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Each keypoint's place among the keypoints of its GRID cell, in the order `_detect`
    writes them (ORB's description groups them by pyramid level, finest first, and keeps them
    strongest first within a level: the first of a cell are its strongest fine keypoints)."""
    height, width = shape[:2]
    cols, rows = GRID
    cell = (points[:, 1] * rows // height).astype(int) * cols + (points[:, 0] * cols // width)
    cell = cell.astype(int)
    order = np.argsort(cell, kind="stable")
    rank = np.empty(len(cell), int)
    rank[order] = np.arange(len(cell)) - np.searchsorted(cell[order], cell[order])
    return rank


def _strongest(fp: Fingerprint, per_cell: int) -> tuple[np.ndarray, np.ndarray]:
    """The fingerprint's first `per_cell` keypoints of every GRID cell (see `_cell_rank`)."""
    keep = _cell_rank(fp.points, (fp.height, fp.width)) < per_cell
    return fp.points[keep], fp.descriptors[keep]


def _rank_score(
    page: tuple[np.ndarray, np.ndarray], template: tuple[np.ndarray, np.ndarray]
) -> int:
    """Inliers of a similarity fitted to the ratio-test matches of two keypoint subsets."""
    (page_points, page_descriptors), (points, descriptors) = page, template
    if len(page_points) < 2 or len(points) < 2:
        return 0
    distance, index = _nearest(page_descriptors, descriptors, 2)
    good = np.flatnonzero(distance[:, 0] < RATIO * distance[:, 1])
    if len(good) < 2:
        return 0
    source, target = page_points[good], points[index[good, 0]]
    fit, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=RANK_PX,
        maxIters=RANK_ITERS, refineIters=0,
    )  # fmt: skip
    return 0 if fit is None else int(mask.sum())


def _fit(
    points: np.ndarray,
    descriptors: np.ndarray,
    template: Template,
    scale: float,
    shape: tuple[int, ...],
) -> tuple[np.ndarray, int, float] | None:
    """The reduced page -> reduced template homography, its inlier count and their spread,
    or None."""
    fp = template.fingerprint
    if len(fp.points) < CANDIDATES:
        return None
    pairs = _Candidates(descriptors, fp.descriptors)
    query, train = pairs.ratio_matches()
    if len(query) < MIN_INLIERS:
        return None
    source, target = points[query], fp.points[train]
    homography, mask = cv2.findHomography(source, target, cv2.USAC_MAGSAC, RANSAC_PX)
    if homography is None:
        return None
    inliers = int(mask.sum())
    if inliers < MIN_INLIERS:
        return None
    spread = _spread(target[mask.ravel() > 0], fp.height)
    homography = _guided(homography, points, fp.points, pairs)
    if not _plausible(homography, shape):
        return None
    return homography, inliers, spread


class _Candidates:
    """The CANDIDATES nearest template descriptors of every page keypoint, as arrays."""

    def __init__(self, query: np.ndarray, train: np.ndarray) -> None:
        distance, train_index = _nearest(query, train, CANDIDATES)
        self.train = train_index.astype(int)  # (N, CANDIDATES), nearest first
        self.distance = distance.astype(np.float64)

    def ratio_matches(self) -> tuple[np.ndarray, np.ndarray]:
        """Page and template keypoint indices of the matches that pass Lowe's ratio test,
        one per template keypoint (the closest). Without that, a repeated shape (a comb
        cell's corner, a label's letter) draws many page keypoints onto one template
        keypoint, and RANSAC takes the homography that squeezes them all onto it."""
        query = np.flatnonzero(self.distance[:, 0] < RATIO * self.distance[:, 1])
        train, distance = self.train[query, 0], self.distance[query, 0]
        order = np.lexsort((distance, train))  # by template keypoint, closest first
        query, train = query[order], train[order]
        first = np.r_[True, train[1:] != train[:-1]] if len(train) else np.zeros(0, bool)
        return query[first], train[first]


def _nearest(query: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances and indices of the `k` nearest `train` descriptors of each `query`
    one, nearest first: what BFMatcher.knnMatch computes (it calls this), as arrays, without
    the Python objects per match that cost a third of the time."""
    return cv2.batchDistance(
        query, train, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k, update=0, crosscheck=False
    )


def _guided(
    homography: np.ndarray, points: np.ndarray, targets: np.ndarray, pairs: _Candidates
) -> np.ndarray:
    """Refit with every candidate match that lands where the first fit says it should: comb
    corners and repeated label letters fail the ratio test but pin the geometry down to a
    pixel, which the ruling check needs."""
    projected = cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), homography)
    gap = targets[pairs.train] - projected.reshape(-1, 1, 2)  # (N, CANDIDATES, 2)
    near = np.einsum("ijk,ijk->ij", gap, gap) <= GUIDED_PX**2
    near &= pairs.distance <= GUIDED_DISTANCE
    query = np.flatnonzero(near.any(axis=1))
    if len(query) < MIN_INLIERS:
        return homography
    chosen = pairs.train[query, near[query].argmax(axis=1)]  # the nearest such candidate
    source, target = np.float32(points[query]), np.float32(targets[chosen])
    refined, _ = cv2.findHomography(source, target, cv2.RANSAC, 2.0)
    return homography if refined is None else refined


def _spread(points: np.ndarray, height: int) -> float:
    """How much of the template's height the inliers cover (10th to 90th percentile): a
    different form with the same letterhead matches only at the top."""
    low, high = np.percentile(points[:, 1], [10, 90])
    return float(high - low) / height


def _plausible(homography: np.ndarray, shape: tuple[int, ...]) -> bool:
    """A scan, not a fold: the page maps to a convex quadrilateral of similar size whose
    opposite sides are nearly equal."""
    h, w = shape[:2]
    corners = np.float64([[[0, 0]], [[w, 0]], [[w, h]], [[0, h]]])
    quad = cv2.perspectiveTransform(corners, homography).reshape(-1, 2)
    if not cv2.isContourConvex(quad.astype(np.float32)):
        return False
    area = abs(cv2.contourArea(quad.astype(np.float32))) / (w * h)
    if not 1 / MAX_SCALE_CHANGE**2 <= area <= MAX_SCALE_CHANGE**2:
        return False
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1)
    top, right, bottom, left = sides
    return (
        abs(top - bottom) / max(top, bottom) <= MAX_TILT
        and abs(left - right) / max(left, right) <= MAX_TILT
    )


def _ink_mask(small: np.ndarray) -> np.ndarray:
    """Dark pixels of the reduced page, grown by two pixels (a ruled line is about a pixel
    wide at this scale and may land two pixels off after a homography). Dark is relative to
    the page's own paper and ink: grey paper with faded ink keeps its rulings."""
    dark = cv2.erode(small, np.ones((5, 5), np.uint8))
    paper, ink = _percentiles(small[::4, ::4], (90, 0.5))
    return dark < paper - max(10.0, INK_CONTRAST * float(paper - ink))


def _percentiles(image: np.ndarray, quantiles: tuple[float, ...]) -> list[float]:
    """np.percentile of a uint8 image (linear interpolation) from its histogram: 0.25 ms
    where sorting the reduced page's samples takes 1.8."""
    counts = np.bincount(image.ravel(), minlength=256)
    below = np.cumsum(counts)  # below[v]: how many values are <= v
    out = []
    for q in quantiles:
        position = q / 100 * (image.size - 1)
        low = int(np.floor(position))
        lower = int(np.searchsorted(below, low, side="right"))
        upper = int(np.searchsorted(below, min(low + 1, image.size - 1), side="right"))
        out.append(lower + (upper - lower) * (position - low))
    return out


def _ruling_score(
    template: Template, to_page: np.ndarray, ink: np.ndarray
) -> tuple[float, np.ndarray]:
    """The share of the template's ruled sides (box and comb sides, underlines) found on the
    page's ink along RULING_FOUND of their length, and the page-pixel shift (up to
    RULING_SHIFT) that finds most ruling points: a keypoint fit can be a pixel or two off,
    and a whole side counts, so a different form whose text or rulings merely cross the
    template's here and there scores low. 1.0 when the template has no rulings."""
    sides = _ruled_sides(template)
    none = np.eye(3)
    if sides is None:
        return 1.0, none
    pts = cv2.perspectiveTransform(sides.reshape(-1, 1, 2), to_page).reshape(-1, 2)
    pts = np.rint(pts).astype(int)
    steps = np.arange(-RULING_SHIFT, RULING_SHIFT + 1)
    shifts = np.stack(np.meshgrid(steps, steps), axis=-1).reshape(-1, 2)  # (dx, dy)
    x = pts[None, :, 0] + shifts[:, None, 0]  # (shifts, points)
    y = pts[None, :, 1] + shifts[:, None, 1]
    height, width = ink.shape
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    hits = ink[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)] & inside
    share = hits.mean(axis=1) - 0.001 * np.abs(shifts).sum(axis=1)  # ties: the least shift
    best = int(np.argmax(share))
    best_hits = hits[best]
    dx, dy = shifts[best]
    best_shift = np.array([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])
    per_side = best_hits.reshape(len(sides), -1).mean(axis=1)
    return float((per_side >= RULING_FOUND).mean()), best_shift


def _ruled_sides(template: Template) -> np.ndarray | None:
    """(sides, RULING_SAMPLES, 2) points along the template's ruled sides, fingerprint
    pixels; None when it has none."""
    factor = template.fingerprint.width / template.width
    samples = []
    t = np.linspace(0.05, 0.95, RULING_SAMPLES)
    for f in template.fields:
        x0, y0 = f.box.x * factor, f.box.y * factor
        x1, y1 = (f.box.x + f.box.w) * factor, (f.box.y + f.box.h) * factor
        xs = x0 + (x1 - x0) * t
        if f.layout in ("comb", "box"):
            ys = y0 + (y1 - y0) * t
            samples += [np.c_[xs, np.full_like(xs, y0)], np.c_[xs, np.full_like(xs, y1)]]
            samples += [np.c_[np.full_like(ys, x0), ys], np.c_[np.full_like(ys, x1), ys]]
        elif f.layout == "underline":  # the line runs along the bottom of the writing band
            line_y = y1 - 0.05 * template.dpi * factor
            samples.append(np.c_[xs, np.full_like(xs, line_y)])
    return np.stack(samples).astype(np.float64) if samples else None
