"""Sequence recognizer: a CRNN (conv stack -> BiGRU -> CTC) reading 1-20 digit strings from
a height-32 line crop, touching and overlapping digits included.

Training strings are synthesised per epoch: handwritten ones composed from MNIST train
digits (gaps from overlap to wide, slant, baseline drift, scale, stroke width, separators
that are not labelled), printed ones from the machine's fonts, plus the ORAND-CAR-A
cheque amounts outside a fixed hold-out. Every line goes through
`ocrd.normalize.normalize_line` (and real scans first through `ink_from_paper`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ocrd.normalize import (
    LINE_HEIGHT,
    MAX_LINE_WIDTH,
    ink_from_paper,
    normalize_line,
    shear_ink,
)
from training import paper, styles, synth
from training.digits import VALIDATION_SPLIT_SEED
from training.marks import with_marks
from training.readers import StringSample, load_mnist, load_orand_car_a, split_holdout

BLANK = 10
NUM_CLASSES = 11
DOWNSAMPLE = 4
WIDTH_STEP = 32
EPOCH_SIZE = 8000
BATCH_SIZE = 48
VALIDATION_SIZE = 5000  # MNIST train images kept out, the same ones as for the digit model
SEPARATORS = ".-,="
ORAND_VAL_FRACTION = 0.1
# Share of each epoch per source: real ORAND lines, strings composed from real ORAND digits,
# MNIST strings, printed strings. "real" is the mix for other writers (issue 10).
MIXES = {
    "mnist": (0.12, 0.0, 0.70, 0.18),
    "real": (0.30, 0.25, 0.30, 0.15),  # tried: ORAND hold-out 83.3% -> 80.6%, not shipped
    "real-light": (0.22, 0.08, 0.52, 0.18),  # tried: hold-out 84.7%, t10k strings 87.0%
    "real-styles": (0.22, 0.08, 0.52, 0.18),  # real-light, a third of 1/4/7/9 styled
    # From scratch: real and real-digit strings at a higher share, styled 1/4/7/9, and half
    # of the synthetic strings put on paper and taken off (`training/paper.py`).
    "cheque": (0.22, 0.30, 0.33, 0.15),
    # cheque, with closing marks, `$` and box edges around a third of the synthetic
    # strings (`training/marks.py`): a stage continued from lines@2.0
    "cheque-marks": (0.22, 0.30, 0.33, 0.15),
}
STYLED_SHARE = {"real-styles": 0.35, "cheque": 0.3, "cheque-marks": 0.3}
PAPER_SHARE = {"cheque": 0.5, "cheque-marks": 0.5}
MARKS_SHARE = {"cheque-marks": 0.35}
GROWN_PREFIX = "grown_"


def sample_length(rng: np.random.Generator, max_length: int = 20) -> int:
    """Mostly 3-8 digits, every length 1-12 common enough, a tail up to 20."""
    if rng.random() < 0.05:
        return int(rng.integers(13, max_length + 1))
    weights = np.array([4, 6, 9, 11, 11, 11, 11, 10, 8, 7, 6, 6], float)
    return int(rng.choice(np.arange(1, 13), p=weights / weights.sum()))


def _paste(canvas: np.ndarray, glyph: np.ndarray, x: int, y: int) -> None:
    height, width = glyph.shape
    region = canvas[y : y + height, x : x + width]
    np.maximum(region, glyph[: region.shape[0], : region.shape[1]], out=region)


def _separator(rng: np.random.Generator, height: int) -> np.ndarray:
    """A handwritten-looking '.', ',', '-' or '=' sized for digits `height` tall."""
    kind = SEPARATORS[int(rng.integers(len(SEPARATORS)))]
    thickness = max(2, height // 10)
    width = int(height * rng.uniform(0.3, 0.6)) if kind in "-=" else thickness + 2
    glyph = np.zeros((height, width + 2), np.uint8)
    low = int(height * rng.uniform(0.8, 0.95))
    mid = int(height * rng.uniform(0.45, 0.6))
    if kind == ".":
        cv2.circle(glyph, (width // 2 + 1, low), thickness // 2 + 1, 255, -1)
    elif kind == ",":
        cv2.line(glyph, (width // 2 + 1, low - 2), (width // 2, height - 1), 255, thickness)
    elif kind == "-":
        cv2.line(glyph, (1, mid), (width, mid + int(rng.integers(-2, 3))), 255, thickness)
    else:
        cv2.line(glyph, (1, mid - thickness), (width, mid - thickness), 255, thickness)
        cv2.line(glyph, (1, mid + thickness), (width, mid + thickness), 255, thickness)
    return glyph


def compose_string(
    glyphs: list[np.ndarray], rng: np.random.Generator, *, handwritten: bool, separators: bool
) -> np.ndarray:
    """Lay glyphs (ink-bright, cropped to ink) out left to right on one canvas."""
    heights = [g.shape[0] for g in glyphs]
    base = int(np.median(heights))
    # Gaps from overlap (negative) to wide; one style per string with jitter per gap.
    style_gap = rng.uniform(-0.15, 0.45) * base if handwritten else rng.uniform(-0.05, 0.35) * base
    drift = rng.uniform(-0.08, 0.08) * base  # baseline slope per glyph
    pieces: list[tuple[np.ndarray, int, int]] = []
    x = 4
    for index, glyph in enumerate(glyphs):
        if handwritten:
            scale = np.exp(rng.uniform(-0.12, 0.12))
            size = (max(1, round(glyph.shape[1] * scale)), max(1, round(glyph.shape[0] * scale)))
            glyph = cv2.resize(glyph, size, interpolation=cv2.INTER_LINEAR)
        y = base // 2 + int(index * drift + rng.normal(0, 0.04 * base)) + (base - glyph.shape[0])
        pieces.append((glyph, x, y))
        gap = style_gap + rng.normal(0, 0.08 * base)
        x += glyph.shape[1] + int(gap)
        if separators and index < len(glyphs) - 1 and rng.random() < 0.12:
            mark = _separator(rng, base)
            pieces.append((mark, x + 2, base // 2))
            x += mark.shape[1] + 4
        x = max(x, 1)
    if separators and rng.random() < 0.25:
        mark = _separator(rng, base)
        pieces.append((mark, x + 3, base // 2))
        x += mark.shape[1] + 6
    min_y = min(y for _, _, y in pieces)
    pieces = [(g, px, py - min_y + 4) for g, px, py in pieces]
    height = max(py + g.shape[0] for g, _, py in pieces) + 4
    width = max(px + g.shape[1] for g, px, _ in pieces) + 4
    canvas = np.zeros((height, width), np.uint8)
    for glyph, px, py in pieces:
        _paste(canvas, glyph, px, py)
    return canvas


def _string_degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole-string distortions: slant, thickness, blur, noise."""
    image = cv2.copyMakeBorder(image, 2, 2, 0, 0, cv2.BORDER_CONSTANT, value=0)
    image = shear_ink(image, rng.uniform(-0.35, 0.35))
    image = synth.random_thickness(image, rng)
    if rng.random() < 0.3:
        image = synth.blur(image, rng)
    if rng.random() < 0.3:
        noise = rng.normal(0, rng.uniform(5, 25), image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image


@dataclass
class SequenceData:
    digits_by_label: list[np.ndarray]  # MNIST train (less hold-out) digit crops per label
    val_digits_by_label: list[np.ndarray]
    printed: list[list[np.ndarray]]  # per label, one glyph per font
    orand_train: list[tuple[np.ndarray, str]]  # normalised line, text
    orand_holdout: list[tuple[np.ndarray, str]]
    # Real digits of other writers: ORAND-CAR-A train digit boxes (ink crops) per label, and
    # a seeded tenth of the ORAND train images kept out of training to pick checkpoints.
    orand_digits_by_label: list[np.ndarray] = field(default_factory=list)
    orand_val: list[tuple[np.ndarray, str]] = field(default_factory=list)


def _ink_crops(images: np.ndarray) -> list[np.ndarray]:
    return [synth.crop_to_ink(image, threshold=40) for image in images]


def _group(crops: list[np.ndarray], labels: np.ndarray) -> list[np.ndarray]:
    return [np.array([crops[i] for i in np.flatnonzero(labels == d)], dtype=object)
            for d in range(10)]  # fmt: skip


def load_orand_lines(samples: list[StringSample]) -> list[tuple[np.ndarray, str]]:
    lines = []
    for sample in samples:
        gray = cv2.imread(str(sample.path), cv2.IMREAD_GRAYSCALE)
        if gray is not None:
            lines.append((normalize_line(ink_from_paper(gray)), sample.text))
    return lines


def orand_digit_glyphs(samples: list[StringSample]) -> list[np.ndarray]:
    """Ink crops of every labelled digit box of the samples, grouped by label."""
    crops: list[np.ndarray] = []
    labels: list[int] = []
    for sample in samples:
        gray = cv2.imread(str(sample.path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            continue
        ink = ink_from_paper(gray)
        for (x, y, w, h), digit in zip(sample.boxes, sample.text, strict=False):
            crop = ink[max(0, y) : y + h, max(0, x) : x + w].copy()
            crop[crop < 80] = 0  # paper residue would paste as a visible box
            crop = synth.crop_to_ink(crop, threshold=40)
            if crop.size and min(crop.shape) >= 3:
                crops.append(crop)
                labels.append(int(digit))
    return _group(crops, np.asarray(labels))


def load_sequence_data(data_dir: Path | None, seed: int) -> SequenceData:
    images, labels = load_mnist("train", data_dir)
    order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(len(images))
    val, train = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:]
    crops = _ink_crops(images)
    printed_images, printed_labels = synth.printed_glyphs("0123456789")
    printed = [[g for g, lab in zip(printed_images, printed_labels, strict=True) if lab == d]
               for d in range(10)]  # fmt: skip
    try:
        orand_train, orand_holdout = split_holdout(load_orand_car_a(data_dir))
    except (OSError, ValueError):
        orand_train, orand_holdout = [], []
    # The hold-out stays fixed; a tenth of the rest picks checkpoints (never trained on).
    orand_fit, orand_val = split_holdout(orand_train, ORAND_VAL_FRACTION, VALIDATION_SPLIT_SEED)
    return SequenceData(
        _group([crops[i] for i in train], labels[train]),
        _group([crops[i] for i in val], labels[val]),
        printed,
        load_orand_lines(orand_fit),
        load_orand_lines(orand_holdout),
        orand_digit_glyphs(orand_fit),
        load_orand_lines(orand_val),
    )


def handwritten_line(
    digits_by_label: list[np.ndarray],
    text: str,
    rng: np.random.Generator,
    separators: bool = True,
    degrade: bool = True,
    styled: float = 0.0,
    on_paper: float = 0.0,
    marks: float = 0.0,
) -> np.ndarray:
    """`text` composed from `digits_by_label`; a `styled` share of its 1, 4, 7 and 9 drawn in
    the styles MNIST lacks (`training/styles.py`: flagged 1, crossed 7, ...); a `marks`
    share with unlabelled marks around it (`training/marks.py`); an `on_paper` share of the
    strings scanned on cheque-like paper (`training/paper.py`)."""
    glyphs = []
    for char in text:
        pool = digits_by_label[int(char)]
        glyph = pool[int(rng.integers(len(pool)))]
        if styled and char in styles.STYLED_DIGITS and rng.random() < styled:
            glyph = _styled_glyph(char, glyph, rng)
        glyphs.append(_full_contrast(glyph))
    canvas = compose_string(glyphs, rng, handwritten=True, separators=separators)
    if marks and rng.random() < marks:
        canvas = with_marks(canvas, rng)
    canvas = _string_degrade(canvas, rng) if degrade else canvas
    if on_paper and rng.random() < on_paper:
        canvas = paper.on_paper(canvas, rng)
    return normalize_line(canvas)


def _full_contrast(glyph: np.ndarray) -> np.ndarray:
    """One pen writes the whole string: crops cut from different scans (ORAND boxes) are
    stretched to the same peak ink, or a faint one vanishes next to a dark one."""
    peak = int(glyph.max())
    if peak in (0, 255):
        return glyph
    return cv2.convertScaleAbs(glyph, alpha=255.0 / peak)


def _styled_glyph(char: str, glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A styled `char` as tall as `glyph` (the digit it replaces), so the string stays even."""
    if char == "1" and rng.random() < 0.6:
        styled = styles.flagged_one(glyph, rng)
    elif char == "7" and rng.random() < 0.6:
        styled = styles.crossed_seven(glyph, rng)
    else:
        styled = styles.drawn_digit(char, rng)
    scale = glyph.shape[0] / max(1, styled.shape[0])
    size = (max(1, round(styled.shape[1] * scale)), glyph.shape[0])
    return cv2.resize(styled, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def printed_line(
    printed: list[list[np.ndarray]], text: str, rng: np.random.Generator, on_paper: float = 0.0
) -> np.ndarray:
    font = int(rng.integers(len(printed[0])))
    glyphs = [printed[int(c)][font % len(printed[int(c)])] for c in text]
    canvas = compose_string(glyphs, rng, handwritten=False, separators=rng.random() < 0.3)
    image = _string_degrade(canvas, rng) if rng.random() < 0.7 else canvas
    if on_paper and rng.random() < on_paper:
        image = paper.on_paper(image, rng)
    return normalize_line(image)


def random_text(rng: np.random.Generator, length: int | None = None) -> str:
    length = length or sample_length(rng)
    return "".join(str(d) for d in rng.integers(0, 10, length))


def build_epoch(
    data: SequenceData, rng: np.random.Generator, size: int, mix: str = "mnist"
) -> list[tuple[np.ndarray, str]]:
    """One epoch of (line, text) drawn from the sources in the shares of `MIXES[mix]`."""
    real, composed, _mnist, printed = MIXES[mix]
    styled = STYLED_SHARE.get(mix, 0.0)
    scanned = PAPER_SHARE.get(mix, 0.0)
    marked = MARKS_SHARE.get(mix, 0.0)
    if not data.orand_train:
        real = 0.0
    if not data.orand_digits_by_label or not all(len(p) for p in data.orand_digits_by_label):
        composed = 0.0
    samples = []
    for _ in range(size):
        kind = rng.random()
        if kind < real:
            line, text = data.orand_train[int(rng.integers(len(data.orand_train)))]
            if rng.random() < 0.6:
                line = _augment_real(line, rng)
            samples.append((line, text))
        elif kind < real + composed:
            text = random_text(rng, _cheque_length(rng))
            line = handwritten_line(
                data.orand_digits_by_label,
                text,
                rng,
                styled=styled,
                on_paper=scanned,
                marks=marked,
            )
            samples.append((line, text))
        elif kind < real + composed + printed:
            text = random_text(rng)
            samples.append((printed_line(data.printed, text, rng, on_paper=scanned), text))
        else:
            text = random_text(rng)
            line = handwritten_line(
                data.digits_by_label,
                text,
                rng,
                styled=styled,
                on_paper=scanned,
                marks=marked,
            )
            samples.append((line, text))
    return samples


def _cheque_length(rng: np.random.Generator) -> int:
    """Amount-like lengths (mostly 3-7 digits) with the general spread half the time."""
    return int(rng.integers(2, 9)) if rng.random() < 0.5 else sample_length(rng)


def _augment_real(line: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild re-augmentation of a real line: horizontal stretch, slant, thickness."""
    image = (line * 255).astype(np.uint8)
    stretch = np.exp(rng.uniform(-0.15, 0.15))
    image = cv2.resize(image, (max(8, int(image.shape[1] * stretch)), image.shape[0]))
    if rng.random() < 0.5:
        image = synth.elastic(image, rng, alpha=rng.uniform(0.02, 0.06))
    image = _string_degrade(image, rng)
    return normalize_line(image)


def batches(samples: list[tuple[np.ndarray, str]], rng: np.random.Generator, batch_size: int):
    """Width-sorted batches (little padding), in random order; images right-padded with 0."""
    order = sorted(range(len(samples)), key=lambda i: samples[i][0].shape[1])
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for group_index in rng.permutation(len(groups)):
        yield pack([samples[i] for i in groups[group_index]])


def pack(samples: list[tuple[np.ndarray, str]]):
    """(images (B, 32, W, 1), labels (B, L) padded with -1, label lengths, frame counts)."""
    widest = max(line.shape[1] for line, _ in samples)
    width = min(MAX_LINE_WIDTH, -(-widest // WIDTH_STEP) * WIDTH_STEP)
    images = np.zeros((len(samples), LINE_HEIGHT, width, 1), np.float32)
    longest = max(1, max(len(text) for _, text in samples))
    labels = np.full((len(samples), longest), -1, np.int32)
    label_lengths = np.zeros(len(samples), np.int32)
    frames = np.zeros(len(samples), np.int32)
    for row, (line, text) in enumerate(samples):
        images[row, :, : line.shape[1], 0] = line[:, :width]
        labels[row, : len(text)] = [int(c) for c in text]
        label_lengths[row] = len(text)
        frames[row] = -(-min(line.shape[1], width) // DOWNSAMPLE)
    return images, labels, label_lengths, frames


def build_model(seed: int, residual: bool = False):
    """Conv stack (height 32 -> 1 feature column per 4 pixels) -> BiGRU -> logits.

    `residual` adds a residual conv block after each of the last two conv blocks. Their
    batch-norm scales start at zero, so each block starts as the identity: a trained
    plain model's weights load into the residual one unchanged (`grow_from`), and the extra
    capacity is trained from there."""
    import keras
    from keras import layers

    def block(x, filters: int):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    def residual_block(x, filters: int, name: str):
        branch = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
        branch = layers.BatchNormalization(gamma_initializer="zeros", name=f"{name}_bn")(branch)
        return layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([x, branch]))

    inputs = keras.Input((LINE_HEIGHT, None, 1), name="line")
    x = block(inputs, 24)
    x = layers.MaxPooling2D(2)(x)  # 16 x W/2
    x = block(x, 48)
    x = layers.MaxPooling2D(2)(x)  # 8 x W/4
    x = block(x, 64)
    if residual:
        x = residual_block(x, 64, f"{GROWN_PREFIX}1")
    x = layers.MaxPooling2D((2, 1))(x)  # 4 x W/4
    x = block(x, 96)
    if residual:
        x = residual_block(x, 96, f"{GROWN_PREFIX}2")
    x = layers.MaxPooling2D((2, 1))(x)  # 2 x W/4
    # (B, 2, T, C) -> (B, T, 2*C): one feature vector per 4-pixel column.
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((-1, 2 * 96))(x)
    x = layers.Dropout(0.15, seed=seed)(x)
    # One BiGRU layer: context across touching digits at a cost a 2-core CPU can train.
    x = layers.Bidirectional(layers.GRU(96, return_sequences=True, seed=seed))(x)
    x = layers.Dropout(0.15, seed=seed + 2)(x)
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="lines")


def is_residual(model) -> bool:
    return any(layer.name.startswith(GROWN_PREFIX) for layer in model.layers)


def grow_from(model, plain) -> None:
    """Copy a plain model's weights into the residual model, layer by layer in order
    (the added `grown_*` layers keep their identity start)."""
    import keras

    def kept(layers) -> list:  # the shipped file adds a Softmax the logits model lacks
        return [layer for layer in layers if not isinstance(layer, keras.layers.Softmax)]

    own = kept(layer for layer in model.layers if not layer.name.startswith(GROWN_PREFIX))
    theirs = kept(plain.layers)
    if [type(a) for a in own] != [type(b) for b in theirs]:
        raise ValueError("the --init model does not have the plain line-model layout")
    for mine, source in zip(own, theirs, strict=True):
        mine.set_weights(source.get_weights())


def with_softmax(logits_model):
    import keras
    from keras import layers

    probabilities = layers.Softmax(name="probabilities")(logits_model.output)
    return keras.Model(logits_model.input, probabilities, name="lines")


def make_train_step(model, optimizer):
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, LINE_HEIGHT, None, 1], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def step(images, labels, label_lengths, frames):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.nn.ctc_loss(
                labels=tf.maximum(labels, 0),
                logits=logits,
                label_length=label_lengths,
                logit_length=frames,
                logits_time_major=False,
                blank_index=BLANK,
            )
            loss = tf.reduce_mean(loss)
        gradients = tape.gradient(loss, model.trainable_variables)
        gradients, _ = tf.clip_by_global_norm(gradients, 5.0)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    return step


def decode_batch(probabilities: np.ndarray, frames: np.ndarray) -> list[str]:
    if probabilities.shape[-1] > NUM_CLASSES:  # a joined model (training/ensemble.py)
        from ocrd.recognition import decode_members

        pairs = zip(probabilities, frames, strict=True)
        return [decode_members(row[:count]).text for row, count in pairs]
    texts = []
    for row, count in zip(probabilities, frames, strict=True):
        best = row[:count].argmax(axis=1)
        keep = (best != BLANK) & np.concatenate([[True], best[1:] != best[:-1]])
        texts.append("".join(str(d) for d in best[keep]))
    return texts


_compiled: dict[int, object] = {}


def _inference_fn(model):
    """One traced function per model (dynamic batch and width: no retracing)."""
    import tensorflow as tf

    if id(model) not in _compiled:
        _compiled[id(model)] = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, LINE_HEIGHT, None, 1], tf.float32)],
        )
    return _compiled[id(model)]


def predict_texts(model, samples: list[tuple[np.ndarray, str]], batch_size: int = 128) -> list[str]:
    """Greedy-decoded strings for (line, text) samples, in order (width-sorted batches)."""
    infer = _inference_fn(model)
    order = sorted(range(len(samples)), key=lambda i: samples[i][0].shape[1])
    texts: list[str] = [""] * len(samples)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        images, _, _, frames = pack([samples[i] for i in chunk])
        probabilities = np.asarray(infer(images))
        for index, text in zip(chunk, decode_batch(probabilities, frames), strict=True):
            texts[index] = text
    return texts


def string_accuracy(model, samples: list[tuple[np.ndarray, str]]) -> float:
    if not samples:
        return float("nan")
    predicted = predict_texts(model, samples)
    return float(np.mean([p == t for p, (_, t) in zip(predicted, samples, strict=True)]))


def validation_set(data: SequenceData, seed: int, size: int = 600) -> list[tuple[np.ndarray, str]]:
    """Handwritten strings from the MNIST-train hold-out plus printed strings (never t10k)."""
    rng = np.random.default_rng(seed + 2000)
    samples = []
    for index in range(size):
        text = random_text(rng, 1 + index % 12)
        if index % 5 == 4:
            samples.append((printed_line(data.printed, text, rng), text))
        else:
            samples.append((handwritten_line(data.val_digits_by_label, text, rng), text))
    return samples


def train_sequence(
    data_dir: Path | None, out_dir: Path, epochs: int, seed: int, log=print,
    checkpoint: Path | None = None, init: Path | None = None, version: str = "1.0",
    grow: bool = False, mix: str = "mnist", extra: Path | None = None, clean_init: bool = False,
    average: int = 0,
) -> dict:  # fmt: skip
    """Train the CRNN and save `lines.keras` into `out_dir`; returns the manifest entry.

    `init` continues from the weights of an earlier `lines.keras` (a second, lower-rate
    stage when one CPU session is too short for the whole schedule). With `grow`, the
    plain `init` model's weights go into the residual model (`build_model(residual=True)`),
    which starts out reading exactly as `init` does; `init` may also be residual already.
    `mix` names the shares of each data source (`MIXES`); checkpoints are picked on the mean
    of the synthetic validation strings and the ORAND validation tenth (never the hold-out).
    `clean_init`: the `init` weights never trained on that tenth (lines@2.0 and later), so
    it scores them too. `average` > 0: the weights at the end of the last `average` epochs are
    also averaged (`training.averaging`), kept when the average beats every single epoch."""
    import keras

    from training.averaging import mean_weights
    from training.manifest import init_note, record_model

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    data = load_sequence_data(data_dir, seed)
    log(f"sequence data ready: {len(data.orand_train)} ORAND train lines, "
        f"{len(data.orand_holdout)} held out ({time.monotonic() - started:.0f}s)")  # fmt: skip
    if extra is not None:  # reviewed fields (training/corrections.py) join the real lines
        from training.corrections import extra_lines

        data.orand_train.extend(extra_lines(extra, log))
    val = validation_set(data, seed)
    start = keras.models.load_model(init, compile=False) if init is not None else None
    start_residual = start is not None and is_residual(start)
    model = build_model(seed, residual=grow or start_residual)
    steps_per_epoch = int(np.ceil(EPOCH_SIZE / BATCH_SIZE))
    peak, warmup = 1.5e-3, 300
    if start is not None:
        if grow and not start_residual:
            grow_from(model, start)
        else:
            model.set_weights(start.get_weights())
        peak, warmup = (4e-4 if mix == "mnist" else 1.5e-4), 100
    schedule = keras.optimizers.schedules.CosineDecay(
        peak / 5, epochs * steps_per_epoch, warmup_target=peak, warmup_steps=warmup
    )
    optimizer = keras.optimizers.Adam(schedule)
    step = make_train_step(model, optimizer)
    best_accuracy, best_weights, best_epoch = -1.0, None, 0
    averaged: list[list[np.ndarray]] = []  # weights at the end of the last `average` epochs
    kept_average = 0  # epochs in the shipped average (0: one epoch's weights)

    def score() -> tuple[float, float, float]:
        synthetic = string_accuracy(model, val)
        real = string_accuracy(model, data.orand_val) if data.orand_val else synthetic
        return (synthetic + real) / 2, synthetic, real

    # Models before lines@2.0 trained on the ORAND validation tenth: for weights descended
    # from them (not `clean_init`), only the synthetic half of the score is clean.
    inflated = init is not None and mix != "mnist" and not clean_init
    if init is not None:  # a continued stage never ships weights worse than it started from
        accuracy, synthetic, real = score()
        log(f"sequence epoch 0 (init): val string acc {synthetic:.4f} ORAND-val {real:.4f}")
        best_accuracy, best_weights = (synthetic if inflated else accuracy), model.get_weights()
    for epoch in range(epochs):
        losses = []
        for images, labels, label_lengths, frames in batches(
            build_epoch(data, rng, EPOCH_SIZE, mix), rng, BATCH_SIZE
        ):
            losses.append(float(step(images, labels, label_lengths, frames)))
        accuracy, synthetic, real = score()
        if inflated:
            accuracy = synthetic  # see above: ORAND-val is inflated for init-descended weights
        log(f"sequence epoch {epoch + 1}/{epochs}: ctc loss {np.mean(losses):.3f} "
            f"val string acc {synthetic:.4f} ORAND-val {real:.4f} "
            f"({time.monotonic() - started:.0f}s)")  # fmt: skip
        # Checkpoint picking on synthetic validation from MNIST train only (never t10k or
        # the ORAND hold-out).
        if accuracy >= best_accuracy:
            best_accuracy, best_weights, best_epoch = accuracy, model.get_weights(), epoch + 1
            if checkpoint is not None:
                with_softmax(model).save(checkpoint)
        if epoch >= epochs - average:
            averaged.append(model.get_weights())
    if len(averaged) > 1:
        model.set_weights(mean_weights(averaged))
        accuracy, synthetic, real = score()
        log(f"sequence average of the last {len(averaged)} epochs: val string acc "
            f"{synthetic:.4f} ORAND-val {real:.4f}")  # fmt: skip
        if (synthetic if inflated else accuracy) > best_accuracy:
            best_accuracy, best_weights = (synthetic if inflated else accuracy), model.get_weights()
            best_epoch, kept_average = epochs, len(averaged)
    model.set_weights(best_weights)
    train_seconds = time.monotonic() - started
    shipped = with_softmax(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "lines.keras"
    shipped.save(path)
    metrics = evaluate_sequence(shipped, data_dir, seed, data)
    metrics["validation_score"] = round(best_accuracy, 5)
    metrics["best_epoch"] = best_epoch
    metrics["averaged_epochs"] = kept_average
    metrics["train_seconds"] = round(train_seconds)
    log(f"sequence metrics: {metrics}")
    return record_model(
        out_dir,
        "lines",
        path,
        {
            "name": "lines",
            "version": version,
            "input": {"shape": [None, LINE_HEIGHT, None, 1], "dtype": "float32", "range": [0, 1],
                      "preprocess": "ocrd.normalize.normalize_line; width padded to a multiple "
                                    f"of {WIDTH_STEP} (<= {MAX_LINE_WIDTH}) with zeros"},
            "output": f"(N, W/{DOWNSAMPLE}, 11) per-frame softmax; classes 0-9 digits, "
                      f"{BLANK} = CTC blank; greedy decoding",
            "training_data": (
                "synthetic strings of 1-20 MNIST-train digits (seeded 5000-image hold-out "
                "kept out) with overlap..wide gaps, slant, drift, scale, stroke width, "
                f"unlabelled separators; printed strings from {len(synth.all_fonts())} fonts; "
                f"ORAND-CAR-A train less a seeded 20% hold-out and a 10% validation part "
                f"({len(data.orand_train)} images), and strings composed from their digit boxes; "
                f"mix {mix!r} {MIXES[mix]} (real, composed, MNIST, printed)"
            ),
            "seed": seed,
            "epochs": epochs,
            "epoch_size": EPOCH_SIZE,
            "init_from": init_note(init),
            "metrics": metrics,
        },
    )  # fmt: skip


def t10k_strings(data_dir: Path | None, seed: int, per_length: int = 200, degrade: bool = True):
    """Held-out synthetic strings built ONLY from MNIST t10k digits, lengths 1-12.

    `degrade=False` leaves out the string-level slant, stroke width, blur and noise (the
    layout - overlap, gaps, drift, separators - stays): it separates what the model misreads
    from what the degradations made illegible."""
    images, labels = load_mnist("t10k", data_dir)
    by_label = _group(_ink_crops(images), labels)
    rng = np.random.default_rng(seed + 31337)
    samples = []
    for length in range(1, 13):
        for _ in range(per_length):
            text = random_text(rng, length)
            samples.append((handwritten_line(by_label, text, rng, degrade=degrade), text))
    return samples


def evaluate_sequence(model, data_dir: Path | None, seed: int, data: SequenceData | None = None):
    data = data or load_sequence_data(data_dir, seed)
    t10k = t10k_strings(data_dir, seed)
    predicted = predict_texts(model, t10k)
    by_length: dict[int, list[bool]] = {}
    for guess, (_, text) in zip(predicted, t10k, strict=True):
        by_length.setdefault(len(text), []).append(guess == text)
    rng = np.random.default_rng(seed + 555)
    printed = []
    for index in range(1200):
        text = random_text(rng, 1 + index % 12)
        printed.append((printed_line(data.printed, text, rng), text))
    return {
        "t10k_string_accuracy": round(float(np.mean([g == t for g, (_, t) in
                                                     zip(predicted, t10k, strict=True)])), 5),
        "t10k_string_accuracy_by_length": {
            str(k): round(float(np.mean(v)), 4) for k, v in sorted(by_length.items())
        },
        "t10k_string_accuracy_undegraded": round(
            string_accuracy(model, t10k_strings(data_dir, seed, degrade=False)), 5
        ),
        "printed_string_accuracy": round(string_accuracy(model, printed), 5),
        "orand_holdout_string_accuracy": round(string_accuracy(model, data.orand_holdout), 5),
        "orand_holdout_size": len(data.orand_holdout),
    }  # fmt: skip
