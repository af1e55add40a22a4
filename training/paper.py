"""Synthetic strings put on paper and taken off it again, the way a real scan arrives.

Real field images (cheque amounts, exported form fields) are dark ink on patterned or
uneven paper, often with the printed rule the amount was written on; the reader sees them
only after `ocrd.normalize.ink_from_paper`. Strings composed from digit crops are clean
ink on black. `on_paper` closes that gap: it draws the ink onto a grey page with a
security-paper hatch, a rule under the writing, speckle and JPEG, then runs the same
`ink_from_paper` inference uses, so the residue the model learns to ignore is the real
kind, not a guess at it.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocrd.normalize import ink_from_paper


def _hatch(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Darkening (0-1) of a security-paper pattern: one or two families of thin lines."""
    height, width = shape
    pattern = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(1, 3))):
        angle = rng.uniform(0, np.pi)
        spacing = rng.uniform(3.0, 9.0)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) / spacing
        pattern += rng.uniform(0.02, 0.08) * (np.cos(2 * np.pi * phase) > 0.6)
    return pattern


def _rule(shape: tuple[int, int], ink_bottom: int, rng: np.random.Generator) -> np.ndarray:
    """Darkening of a printed line just under (or through the foot of) the writing."""
    rule = np.zeros(shape, np.float32)
    y = min(shape[0] - 1, ink_bottom + int(rng.integers(-3, 6)))
    x0 = int(rng.integers(0, max(1, shape[1] // 6)))
    x1 = shape[1] - int(rng.integers(0, max(1, shape[1] // 6)))
    cv2.line(rule, (x0, y), (x1, y + int(rng.integers(-1, 2))), 1.0, int(rng.integers(1, 3)))
    return rule * rng.uniform(0.3, 0.7)


def scan(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink-bright uint8 string -> the grey image a scanner gives of it written on
    cheque-like paper (margins, hatch, a rule, speckle, uneven light, JPEG)."""
    height = ink.shape[0]
    top, bottom = int(height * rng.uniform(0.02, 0.25)), int(height * rng.uniform(0.05, 0.35))
    side = int(height * rng.uniform(0.05, 0.3))
    ink = cv2.copyMakeBorder(ink, top, bottom, side, side, cv2.BORDER_CONSTANT, value=0)
    darkness = np.zeros(ink.shape, np.float32)
    if rng.random() < 0.7:
        darkness += _hatch(ink.shape, rng)
    if rng.random() < 0.6:
        darkness += _rule(ink.shape, top + height, rng)
    if rng.random() < 0.4:  # speckle: paper fibres and dust
        speckle = rng.random(ink.shape) < rng.uniform(0.002, 0.02)
        darkness += speckle * rng.uniform(0.1, 0.4)
    pen = rng.uniform(0.55, 0.95)
    darkness = np.maximum(darkness, ink.astype(np.float32) / 255 * pen)
    paper = rng.uniform(150, 235) + rng.normal(0, rng.uniform(1, 6), ink.shape)
    paper += np.linspace(0, rng.uniform(-25, 25), ink.shape[1])[None, :]  # uneven light
    gray = np.clip(paper * (1 - darkness), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        quality = int(rng.integers(35, 90))
        ok, encoded = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            gray = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return gray


def on_paper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink-bright uint8 string -> ink-bright uint8 as `ink_from_paper` returns it for the
    same string scanned on cheque-like paper (`scan`)."""
    return ink_from_paper(scan(ink, rng))
