"""Digit styles MNIST barely has, for both models: how other writers form their digits.

MNIST's writers were American; European and Latin-American hands write a `1` with a long
lead-in flag and often a foot, cross their `7`, draw an open `4` and a `9` with a straight
stem. Here such variants are drawn:

- onto real digits: a lead-in flag and/or foot serif on MNIST `1`s, a crossbar on `7`s;
- from strokes: `1`, `4` (open and closed), `7` (crossed or not) and `9` (straight or curved
  stem) as jittered polylines with random pen width, slant and aspect;
- from handwriting fonts (Debian packages, see `HANDWRITING_FONT_DIRS`), when installed.

All images are uint8, ink bright on black, cropped to the ink, like MNIST crops before
`ocrd.normalize.normalize_digit`. Every function takes an explicit generator.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from training import synth

# apt-get install fonts-bwht fonts-breip fonts-dkg-handwriting fonts-rufscript
#   fonts-femkeklaver fonts-humor-sans fonts-klee fonts-sjfonts fonts-comic-neue
HANDWRITING_FONT_DIRS = tuple(
    Path("/usr/share/fonts") / sub
    for sub in (
        "opentype/bwht", "truetype/breip", "truetype/fifthhorseman", "truetype/rufscript",
        "truetype/femkeklaver", "truetype/humor-sans", "truetype/klee", "truetype/sjfonts",
        "opentype/comic-neue",
    )
)  # fmt: skip
STYLED_DIGITS = "1479"
CANVAS = 112  # strokes are drawn large, then cropped to ink


@lru_cache(maxsize=1)
def handwriting_fonts() -> tuple[Path, ...]:
    found = [p for d in HANDWRITING_FONT_DIRS if d.is_dir() for p in d.iterdir()
             if p.suffix.lower() in (".ttf", ".otf")]  # fmt: skip
    return tuple(sorted(found))


def _pen(image: np.ndarray) -> int:
    """Stroke width of the ink (area over skeleton-ish length), at least 1 pixel."""
    ink = image > 96
    if not ink.any():
        return 2
    eroded = cv2.erode(ink.astype(np.uint8), np.ones((3, 3), np.uint8))
    edge = int(ink.sum() - eroded.sum())
    return max(1, round(2 * ink.sum() / max(1, edge)))


def _padded(image: np.ndarray, pad: int) -> np.ndarray:
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)


def flagged_one(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A `1` with a lead-in flag from the top of its stem, sometimes a foot serif too."""
    image = _padded(synth.crop_to_ink(image), 12)
    rows = np.flatnonzero(image.max(axis=1) > 96)
    top, bottom = int(rows[0]), int(rows[-1])
    height = bottom - top
    top_x = int(np.mean(np.flatnonzero(image[top] > 96)))
    bottom_x = int(np.mean(np.flatnonzero(image[bottom] > 96)))
    pen = _pen(image)
    length = height * rng.uniform(0.25, 0.5)
    angle = np.deg2rad(rng.uniform(20, 60))  # below the horizontal, to the left
    end = (int(top_x - length * np.cos(angle)), int(top + length * np.sin(angle)))
    cv2.line(image, (top_x, top), end, 255, pen, cv2.LINE_AA)
    if rng.random() < 0.35:
        half = int(height * rng.uniform(0.15, 0.3))
        cv2.line(image, (bottom_x - half, bottom), (bottom_x + half, bottom), 255, pen, cv2.LINE_AA)
    return synth.crop_to_ink(image)


def crossed_seven(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A `7` with a short bar across the middle of its stem."""
    image = _padded(synth.crop_to_ink(image), 12)
    rows = np.flatnonzero(image.max(axis=1) > 96)
    top, bottom = int(rows[0]), int(rows[-1])
    y = int(top + (bottom - top) * rng.uniform(0.45, 0.6))
    stem = np.flatnonzero(image[y] > 96)
    if stem.size == 0:
        return synth.crop_to_ink(image)
    centre = int(np.mean(stem))
    half = int((bottom - top) * rng.uniform(0.15, 0.3))
    tilt = int(rng.integers(-3, 4))
    cv2.line(image, (centre - half, y + tilt), (centre + half, y - tilt), 255, _pen(image),
             cv2.LINE_AA)  # fmt: skip
    return synth.crop_to_ink(image)


def _strokes(digit: str, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """Polylines in a unit box (x right, y down) for one style of `digit`."""
    j = lambda: rng.normal(0, 0.03)  # noqa: E731 (a tiny jitter helper)
    if digit == "1":
        strokes = [[(0.55 + j(), 0.0), (0.5 + j(), 1.0)]]
        if rng.random() < 0.8:
            strokes.append([(0.55, 0.0), (0.55 - rng.uniform(0.2, 0.45), rng.uniform(0.15, 0.4))])
        if rng.random() < 0.35:
            strokes.append([(0.3 + j(), 1.0), (0.75 + j(), 1.0)])
        return strokes
    if digit == "4":
        cross = rng.uniform(0.55, 0.75)
        stem = rng.uniform(0.55, 0.75)
        if rng.random() < 0.5:  # open: two strokes, the left one an L
            return [[(0.15 + j(), 0.0), (0.05 + j(), cross), (0.95 + j(), cross)],
                    [(stem + j(), 0.2 + j()), (stem + j(), 1.0)]]  # fmt: skip
        return [[(stem + j(), 1.0), (stem + j(), 0.0), (0.05 + j(), cross), (0.95 + j(), cross)]]
    if digit == "7":
        bend = (rng.uniform(0.35, 0.6), 1.0)
        strokes = [[(0.05 + j(), 0.05 + j()), (0.95 + j(), 0.0), bend]]
        if rng.random() < 0.6:
            mid_y = rng.uniform(0.45, 0.6)
            mid_x = 0.95 + (bend[0] - 0.95) * mid_y
            strokes.append([(mid_x - 0.25, mid_y + j()), (mid_x + 0.25, mid_y + j())])
        return strokes
    # "9": a loop on top and a straight (or slightly curved) stem from its right side
    turns = np.linspace(0, 2 * np.pi, 16)
    loop = [(0.5 + 0.42 * np.cos(t), 0.25 + 0.25 * np.sin(t)) for t in turns]
    foot = rng.uniform(-0.15, 0.1)
    return [loop, [(0.92 + j(), 0.25), (0.9 + foot, 1.0)]]


def drawn_digit(digit: str, rng: np.random.Generator) -> np.ndarray:
    """One stroke-drawn `digit` (one of STYLED_DIGITS) with random aspect, slant and pen."""
    height = CANVAS * 0.7
    width = height * rng.uniform(0.45, 0.8)
    slant = rng.uniform(-0.3, 0.25)
    pen = int(rng.integers(4, 12))
    image = np.zeros((CANVAS, CANVAS + 40), np.uint8)
    for stroke in _strokes(digit, rng):
        points = np.array([(20 + x * width + slant * (1 - y) * height, 15 + y * height)
                           for x, y in stroke], np.int32)  # fmt: skip
        cv2.polylines(image, [points], False, 255, pen, cv2.LINE_AA)
    if rng.random() < 0.5:
        image = synth.elastic(image, rng, alpha=rng.uniform(0.01, 0.04))
    return synth.crop_to_ink(image, threshold=30)


def font_digit(digit: str, rng: np.random.Generator) -> np.ndarray | None:
    """`digit` in a random handwriting font, or None when none is installed."""
    fonts = handwriting_fonts()
    if not fonts:
        return None
    glyph = synth.render_text(digit, fonts[int(rng.integers(len(fonts)))], 64)
    return glyph if glyph.size and glyph.max() > 0 else None


def styled_digit(rng: np.random.Generator, by_label: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """A style variant of a random digit: drawn onto a real digit of `by_label` (raw MNIST
    images per label), drawn from strokes, or from a handwriting font."""
    choice = rng.random()
    if choice < 0.35:
        label = 1 if rng.random() < 0.6 else 7
        pool = by_label[label]
        base = pool[int(rng.integers(len(pool)))]
        return (flagged_one if label == 1 else crossed_seven)(base, rng), label
    if choice < 0.75:
        label = int(STYLED_DIGITS[int(rng.integers(len(STYLED_DIGITS)))])
        return drawn_digit(str(label), rng), label
    label = int(rng.integers(10))
    glyph = font_digit(str(label), rng)
    if glyph is None:
        return drawn_digit("1", rng), 1
    return glyph, label
