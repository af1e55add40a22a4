"""Synthetic material shared by both models: printed glyphs from the machine's fonts,
scan-like degradations, and "not a digit" blobs for the classifier's reject class.

Everything takes an explicit `numpy.random.Generator`, so a seed fixes the data.
Images here are uint8, ink bright on black, like the crops `ocrd.normalize` expects.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
)
# Letters and marks that a form's digit field may hold but that are not digits. Letters
# and marks that look like digits in many hands (O o D Q I l i j S s Z z B b G g q T t A
# / ( ) ?) are left out, or the reject class would fight the digit classes.
NON_DIGIT_CHARS = "CEFHKLMNPRUVWXYacdefhkmnprsuvwxy-.,=:+*#%&"
RENDER_SIZE = 48


@lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """TrueType/OpenType fonts on the machine, sorted so seeds pick the same ones."""
    found: set[Path] = set()
    for folder in FONT_DIRS:
        if folder.is_dir():
            found.update(p for p in folder.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    # Math/symbol fonts draw digits oddly; keep text faces. Handwriting fonts
    # (training/styles.py) are not print: the printed set stays the same with them installed.
    from training.styles import HANDWRITING_FONT_DIRS

    def handwriting(path: Path) -> bool:
        return any(folder in path.parents for folder in HANDWRITING_FONT_DIRS)

    return tuple(sorted(p for p in found if "Math" not in p.name and not handwriting(p)))


def crop_to_ink(image: np.ndarray, threshold: int = 0) -> np.ndarray:
    """Trim rows and columns whose brightest pixel is not above `threshold`."""
    rows = np.flatnonzero(image.max(axis=1) > threshold)
    cols = np.flatnonzero(image.max(axis=0) > threshold)
    if rows.size == 0:
        return image
    return image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def render_text(text: str, font: Path | int, size: int = RENDER_SIZE) -> np.ndarray:
    """`text` drawn white on black with a TrueType file or a Hershey font id, cropped to ink."""
    if isinstance(font, Path):
        face = ImageFont.truetype(str(font), size)
        left, top, right, bottom = face.getbbox(text)
        canvas = Image.new("L", (right - left + 8, bottom - top + 8), 0)
        ImageDraw.Draw(canvas).text((4 - left, 4 - top), text, fill=255, font=face)
        image = np.asarray(canvas)
    else:
        scale = size / 30
        thickness = max(1, round(size / 20))
        (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
        image = np.zeros((height + baseline + 8, width + 8), np.uint8)
        cv2.putText(image, text, (4, height + 4), font, scale, 255, thickness, cv2.LINE_AA)
    return crop_to_ink(image)


def all_fonts() -> list[Path | int]:
    return [*font_files(), *HERSHEY_FONTS]


@lru_cache(maxsize=4)
def printed_glyphs(chars: str, size: int = RENDER_SIZE) -> tuple[list[np.ndarray], np.ndarray]:
    """Every char of `chars` in every font: (images, index into chars)."""
    images, labels = [], []
    for font in all_fonts():
        for index, char in enumerate(chars):
            glyph = render_text(char, font, size)
            if glyph.size and glyph.max() > 0:
                images.append(glyph)
                labels.append(index)
    return images, np.asarray(labels)


# ----------------------------------------------------------------- degradations


def random_affine(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Small rotation, shear and anisotropic scale, on a canvas padded so nothing is cut."""
    height, width = image.shape
    pad = max(height, width) // 3 + 2
    image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    angle = np.deg2rad(rng.uniform(-12, 12) * strength)
    shear = rng.uniform(-0.3, 0.3) * strength
    scale_x = np.exp(rng.uniform(-0.15, 0.15) * strength)
    scale_y = np.exp(rng.uniform(-0.15, 0.15) * strength)
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1, shear], [0, 1]])
    linear = linear @ np.diag([scale_x, scale_y])
    centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
    matrix = np.hstack([linear, (centre - linear @ centre)[:, None]]).astype(np.float32)
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR)


def elastic(image: np.ndarray, rng: np.random.Generator, alpha: float = 0.08,
            sigma: float = 0.12) -> np.ndarray:  # fmt: skip
    """Smooth random displacement of the ink (Simard et al. 2003): another writer's wobble.

    `alpha` and `sigma` are fractions of the image height, so the effect is scale-free."""
    height, width = image.shape
    blur = max(1.0, sigma * height)
    field_x = cv2.GaussianBlur(rng.uniform(-1, 1, image.shape).astype(np.float32), (0, 0), blur)
    field_y = cv2.GaussianBlur(rng.uniform(-1, 1, image.shape).astype(np.float32), (0, 0), blur)
    peak = max(float(np.abs(field_x).max()), float(np.abs(field_y).max()), 1e-6)
    scale = alpha * height / peak
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32),
                                 np.arange(height, dtype=np.float32))  # fmt: skip
    return cv2.remap(image, grid_x + field_x * scale, grid_y + field_y * scale, cv2.INTER_LINEAR)


def random_thickness(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thinner or thicker strokes, scaled to the glyph size (pens and scanners differ)."""
    size = max(1, round(min(image.shape) / 28))
    choice = rng.random()
    if choice < 0.2:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size + 1, size + 1))
        thinner = cv2.erode(image, kernel)
        return thinner if thinner.max() > 64 else image
    if choice < 0.45:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size + 1 + rng.integers(0, 2),) * 2)
        return cv2.dilate(image, kernel)
    return image


def broken_strokes(image: np.ndarray, rng: np.random.Generator, cuts: int = 1) -> np.ndarray:
    """Thin dark lines across the ink: strokes broken by a dry pen or a poor scan."""
    image = image.copy()
    height, width = image.shape
    for _ in range(cuts):
        x0, x1 = rng.integers(0, width, 2)
        y0, y1 = rng.integers(0, height, 2)
        thickness = max(1, round(min(height, width) / 28 * rng.uniform(0.6, 1.4)))
        cv2.line(image, (int(x0), int(y0)), (int(x1), int(y1)), 0, thickness)
    return image


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(0.4, 1.1) * max(1.0, min(image.shape) / 28)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def degrade(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """The raw-crop degradations in random combination (before normalisation)."""
    if rng.random() < 0.85:
        image = random_affine(image, rng, strength)
    image = random_thickness(image, rng)
    if rng.random() < 0.12:
        image = broken_strokes(image, rng, cuts=int(rng.integers(1, 3)))
    if rng.random() < 0.3:
        image = blur(image, rng)
    return image


def border_bits(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A piece of box border along one edge of a normalised float image."""
    image = image.copy()
    size = image.shape[0]
    edge = rng.integers(0, 4)
    depth = int(rng.integers(0, 3))
    start = int(rng.integers(0, size // 2))
    stop = int(rng.integers(start + size // 4, size + 1))
    level = rng.uniform(0.4, 1.0)
    width = int(rng.integers(1, 3))
    if edge == 0:
        image[depth : depth + width, start:stop] = level
    elif edge == 1:
        image[size - depth - width : size - depth, start:stop] = level
    elif edge == 2:
        image[start:stop, depth : depth + width] = level
    else:
        image[start:stop, size - depth - width : size - depth] = level
    return image


def add_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian grain plus a few specks on a normalised float image."""
    noisy = image + rng.normal(0, rng.uniform(0.01, 0.08), image.shape).astype(np.float32)
    specks = rng.random(image.shape) < rng.uniform(0, 0.01)
    noisy[specks] = rng.uniform(0.3, 1.0)
    return np.clip(noisy, 0, 1).astype(np.float32)


# ------------------------------------------------------------- not-a-digit blobs


def _box_lines(rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """Corners, straight rules and box fragments as a comb field leaves them."""
    image = np.zeros((size, size), np.uint8)
    thickness = int(rng.integers(1, 4))
    kind = rng.integers(0, 4)
    a, b = sorted(rng.integers(2, size - 2, 2))
    if kind == 0:  # corner
        cv2.line(image, (a, a), (size - 1, a), 255, thickness)
        cv2.line(image, (a, a), (a, size - 1), 255, thickness)
    elif kind == 1:  # horizontal rule
        cv2.line(image, (0, a), (size - 1, a + int(rng.integers(-2, 3))), 255, thickness)
    elif kind == 2:  # vertical-ish rule with a tick
        cv2.line(image, (a, 0), (a, size - 1), 255, thickness)
        cv2.line(image, (a, b), (min(size - 1, a + 14), b), 255, thickness)
    else:  # a bracket-like piece of box
        cv2.line(image, (a, 2), (a, size - 3), 255, thickness)
        cv2.line(image, (a, 2), (size - 1, 2), 255, thickness)
        cv2.line(image, (a, size - 3), (size - 1, size - 3), 255, thickness)
    return image


def _smudge(rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """Blots, specks and scribble-free stains."""
    image = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        centre = tuple(int(v) for v in rng.integers(8, size - 8, 2))
        axes = tuple(int(v) for v in rng.integers(2, 12, 2))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 3.0))
    return image


def _noise_patch(rng: np.random.Generator, size: int = 40) -> np.ndarray:
    density = rng.uniform(0.02, 0.3)
    image = ((rng.random((size, size)) < density) * 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    return image


def _fragment(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small corner of a digit (a stroke end, a dot): too little to read as a digit."""
    height, width = digit.shape
    # Square-ish pieces only: a tall thin fragment would be a perfectly good "1".
    keep_h = max(2, int(height * rng.uniform(0.2, 0.35)))
    keep_w = max(2, int(width * rng.uniform(0.2, 0.35)))
    top = int(rng.integers(0, height - keep_h + 1))
    left = int(rng.integers(0, width - keep_w + 1))
    return np.ascontiguousarray(digit[top : top + keep_h, left : left + keep_w])


def reads_as_one(image: np.ndarray) -> bool:
    """Whether a blob is one straight, upright-ish stroke: a handwritten "1", whatever made it.

    Smudges and digit fragments produce such strokes; labelling them "not a digit" would
    teach the classifier to reject real 1s, and counting them as accepted non-digits would
    measure the reject option against blobs any reader calls a 1."""
    mask = (image > 40).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return False
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[biggest, cv2.CC_STAT_AREA] < 0.9 * mask.sum():
        return False
    ys, xs = np.nonzero(labels == biggest)
    if len(xs) < 3:
        return False
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(np.stack([xs, ys]).astype(np.float64)))
    elongation = np.sqrt(eigenvalues[1] / max(eigenvalues[0], 0.25))
    along_x, along_y = eigenvectors[:, 1]
    return bool(elongation >= 3.0 and abs(along_y) >= abs(along_x))


def non_digit_blob(
    rng: np.random.Generator, printed: list[np.ndarray], mnist_digits: np.ndarray
) -> np.ndarray:
    """One raw (un-normalised) blob that is not a digit (never a lone upright stroke)."""
    while True:
        blob = _any_non_digit(rng, printed, mnist_digits)
        if not reads_as_one(blob):
            return blob


def _any_non_digit(
    rng: np.random.Generator, printed: list[np.ndarray], mnist_digits: np.ndarray
) -> np.ndarray:
    # Smudges and fragments get the largest shares after letters: they are what digits@1.0
    # (trained on 13% / 8% of them) still accepted most often.
    kind = rng.random()
    if kind < 0.4:
        image = printed[int(rng.integers(len(printed)))]
        return degrade(image, rng)
    if kind < 0.52:
        return _box_lines(rng)
    if kind < 0.74:
        return _smudge(rng)
    if kind < 0.8:
        return _noise_patch(rng)
    return _fragment(mnist_digits[int(rng.integers(len(mnist_digits)))], rng)
