"""What writers and forms put around an amount that is not part of it.

Real cheque amounts end in a closing mark (`=`, `.-`, `,-`, `/-`, a long dash, a flourish)
that stops anyone appending digits, and their crops often catch an edge of the printed box
or a `$`. The line model read such marks as digits (`12867=` -> 128672, `230,` -> 2301, a
box edge -> a leading 1). `with_marks` adds them, unlabelled, to a composed string (ink
bright on black, as `compose_string` makes it), so the model learns to skip them.
"""

from __future__ import annotations

import cv2
import numpy as np

CLOSINGS = ("=", ".-", ",-", "/-", "-", "--", "~", "/=")


def _stroke(height: int, rng: np.random.Generator) -> int:
    return max(2, int(height * rng.uniform(0.06, 0.12)))


def closing_mark(height: int, rng: np.random.Generator) -> np.ndarray:
    """One closing mark drawn for digits `height` pixels tall."""
    kind = CLOSINGS[int(rng.integers(len(CLOSINGS)))]
    thick = _stroke(height, rng)
    width = int(height * rng.uniform(0.5, 1.4 if kind in ("--", "~") else 0.9))
    glyph = np.zeros((height, width + 2 * thick + 4), np.uint8)
    mid = int(height * rng.uniform(0.4, 0.65))
    x0, x1 = thick + 1, width + thick
    if kind.startswith(".") or kind.startswith(","):
        cv2.circle(glyph, (x0, int(height * 0.88)), thick // 2 + 1, 255, -1)
        if kind[0] == ",":
            cv2.line(glyph, (x0, int(height * 0.88)), (x0 - 1, height - 1), 255, thick)
        x0 += 2 * thick + 2
    elif kind.startswith("/"):
        cv2.line(glyph, (x0, height - 2), (x0 + height // 3, int(height * 0.3)), 255, thick)
        x0 += height // 3 + thick
    if kind.endswith("="):
        gap = max(thick + 1, height // 7)
        cv2.line(glyph, (x0, mid - gap), (x1, mid - gap + int(rng.integers(-2, 3))), 255, thick)
        cv2.line(glyph, (x0, mid + gap), (x1, mid + gap + int(rng.integers(-2, 3))), 255, thick)
    elif kind == "~":
        xs = np.linspace(x0, x1, 24)
        ys = mid + np.sin(np.linspace(0, rng.uniform(2, 4) * np.pi, 24)) * height * 0.1
        points = np.stack([xs, ys], 1).astype(np.int32)
        cv2.polylines(glyph, [points], False, 255, thick)
    else:
        cv2.line(glyph, (x0, mid), (x1, mid + int(rng.integers(-3, 4))), 255, thick)
    return glyph


def dollar_sign(height: int, rng: np.random.Generator) -> np.ndarray:
    """A `$`, printed or written, a little smaller than the digits."""
    size = int(height * rng.uniform(0.7, 1.0))
    glyph = np.zeros((size, size), np.uint8)
    scale = size / 30
    cv2.putText(glyph, "$", (int(2 * scale), int(size * 0.85)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, 255, max(1, int(scale * 2)))  # fmt: skip
    return glyph


def _box_edge(canvas: np.ndarray, rng: np.random.Generator, side: str) -> np.ndarray:
    """The crop caught the printed box: a vertical rule on `side`, or a rule above/below."""
    height, width = canvas.shape
    thick = int(rng.integers(1, 4))
    level = int(rng.integers(160, 256))
    pad = int(rng.integers(2, max(3, height // 4)))
    if side in "lr":
        left, right = (pad, 0) if side == "l" else (0, pad)
        canvas = cv2.copyMakeBorder(canvas, 0, 0, left, right, cv2.BORDER_CONSTANT, value=0)
        x = thick if side == "l" else canvas.shape[1] - thick - 1
        top = int(rng.integers(0, height // 3 + 1))
        bottom = height - int(rng.integers(0, height // 3 + 1))
        cv2.line(canvas, (x, top), (x, bottom - 1), level, thick)
    else:
        above, below = (pad, 0) if side == "t" else (0, pad)
        canvas = cv2.copyMakeBorder(canvas, above, below, 0, 0, cv2.BORDER_CONSTANT, value=0)
        y = thick if side == "t" else canvas.shape[0] - thick - 1
        cv2.line(canvas, (0, y), (canvas.shape[1] - 1, y), level, thick)
    return canvas


def _beside(
    canvas: np.ndarray, mark: np.ndarray, rng: np.random.Generator, right: bool
) -> np.ndarray:
    """`mark` placed beside the string, its top near the digits' top."""
    height = canvas.shape[0]
    gap = int(rng.integers(1, max(2, height // 4)))
    mark = mark[:height]
    block = np.zeros((height, mark.shape[1] + gap), np.uint8)
    top = int(rng.integers(0, max(1, height - mark.shape[0] + 1)))
    x = gap if right else 0
    block[top : top + mark.shape[0], x : x + mark.shape[1]] = mark
    return np.hstack([canvas, block] if right else [block, canvas])


def with_marks(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`canvas` with one or two of: a closing mark, a leading `$`, an edge of the box."""
    digit_height = max(8, canvas.shape[0] - 8)  # compose_string pads 4 above and below
    if rng.random() < 0.6:
        canvas = _beside(canvas, closing_mark(digit_height, rng), rng, right=True)
    if rng.random() < 0.2:
        canvas = _beside(canvas, dollar_sign(digit_height, rng), rng, right=False)
    if rng.random() < 0.4:
        canvas = _box_edge(canvas, rng, "lrtb"[int(rng.integers(4))])
    return canvas
