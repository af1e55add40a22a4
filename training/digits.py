"""Single-digit classifier: a compact CNN on 28x28 MNIST-convention inputs with an 11th
"not a digit" class and a temperature-scaled softmax for the reject option.

Training data per epoch, freshly augmented: MNIST train (less a seeded validation
hold-out), printed digits rendered from the machine's fonts, and non-digit blobs
(letters, box lines, smudges, noise, fragments). Every sample goes through
`ocrd.normalize.normalize_digit`, the same function the pipeline uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ocrd.normalize import DIGIT_SIZE, normalize_digit
from training import styles, synth
from training.readers import load_mnist

NOT_A_DIGIT = 10
NUM_CLASSES = 11
VALIDATION_SIZE = 5000
# The MNIST-train hold-out is the same for every training seed and for both models, so a
# second training stage never validates on digits an earlier stage trained on.
VALIDATION_SPLIT_SEED = 1
PRINTED_PER_EPOCH = 6000
NON_DIGIT_PER_EPOCH = 6000
ORAND_REPEATS = 2  # each real ORAND digit twice per epoch, differently augmented
STYLES_PER_EPOCH = 8000
BATCH_SIZE = 256
# Share of true (validation) digits allowed below the reject threshold.
TARGET_DIGIT_REJECT = 0.002


@dataclass
class DigitData:
    train_images: np.ndarray  # raw MNIST uint8
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    printed: list[np.ndarray]
    printed_labels: np.ndarray
    non_digit_glyphs: list[np.ndarray]
    # Other writers ("real" mix): ORAND-CAR-A digit boxes (ink crops) of the training part,
    # and those of the validation tenth that picks checkpoints (never the hold-out).
    orand: list[np.ndarray] = field(default_factory=list)
    orand_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    orand_val: list[np.ndarray] = field(default_factory=list)
    orand_val_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def load_digit_data(data_dir: Path | None, seed: int, mix: str = "mnist") -> DigitData:
    images, labels = load_mnist("train", data_dir)
    order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(len(images))
    val, train = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:]
    printed, printed_labels = synth.printed_glyphs("0123456789")
    non_digit, _ = synth.printed_glyphs(synth.NON_DIGIT_CHARS)
    data = DigitData(
        images[train], labels[train], images[val], labels[val],
        printed, printed_labels, non_digit,
    )  # fmt: skip
    if mix == "real":
        data.orand, data.orand_labels, data.orand_val, data.orand_val_labels = _orand_digits(
            data_dir
        )
    return data


def _orand_digits(data_dir: Path | None) -> tuple[list, np.ndarray, list, np.ndarray]:
    """ORAND-CAR-A digit crops: (fit crops, labels, validation crops, labels)."""
    from training.readers import load_orand_car_a, split_holdout
    from training.sequence import ORAND_VAL_FRACTION, orand_digit_glyphs

    train, _holdout = split_holdout(load_orand_car_a(data_dir))
    fit, val = split_holdout(train, ORAND_VAL_FRACTION, VALIDATION_SPLIT_SEED)
    out = []
    for samples in (fit, val):
        by_label = orand_digit_glyphs(samples)
        crops = [crop for group in by_label for crop in group]
        out += [crops, np.concatenate([np.full(len(g), d) for d, g in enumerate(by_label)])]
    return out[0], out[1].astype(np.int64), out[2], out[3].astype(np.int64)


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normalise a raw crop, then add what scanning adds around a normalised digit."""
    digit = normalize_digit(image)
    if rng.random() < 0.1:
        digit = synth.border_bits(digit, rng)
    if rng.random() < 0.3:
        digit = synth.add_noise(digit, rng)
    return digit


def augmented_digit(image: np.ndarray, rng: np.random.Generator, p: float = 0.7) -> np.ndarray:
    if rng.random() < p:
        image = synth.degrade(image, rng)
    return _finish(image, rng)


def build_epoch(
    data: DigitData,
    rng: np.random.Generator,
    printed: int,
    non_digit: int,
    form_crops: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch of freshly augmented, normalised samples (plus any crops cut from
    generated form pages, already normalised), shuffled."""
    samples, labels = [], []
    if form_crops is not None:
        samples.extend(form_crops[0])
        labels.extend(form_crops[1])
    for image, label in zip(data.train_images, data.train_labels, strict=True):
        samples.append(augmented_digit(image, rng))
        labels.append(label)
    for index in rng.integers(0, len(data.printed), printed):
        samples.append(augmented_digit(data.printed[index], rng, p=0.9))
        labels.append(data.printed_labels[index])
    for _ in range(non_digit):
        blob = synth.non_digit_blob(rng, data.non_digit_glyphs, data.train_images)
        samples.append(_finish(blob, rng))
        labels.append(NOT_A_DIGIT)
    if data.orand:  # the "real" mix: other writers' digits and styles MNIST lacks
        for _ in range(ORAND_REPEATS):
            for crop, label in zip(data.orand, data.orand_labels, strict=True):
                samples.append(augmented_digit(crop, rng, p=0.8))
                labels.append(label)
        by_label = _by_label(data.train_images, data.train_labels)
        for _ in range(STYLES_PER_EPOCH):
            glyph, label = styles.styled_digit(rng, by_label)
            samples.append(augmented_digit(glyph, rng, p=0.8))
            labels.append(label)
    x = np.stack(samples)[..., None]
    y = np.asarray(labels, np.int64)
    order = rng.permutation(len(y))
    return x[order], y[order]


def _per_set(model, val: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Accuracy on each validation set (argmax over 11 classes), for the log."""
    parts = []
    for name, (x, y) in val.items():
        predicted = model.predict(x, batch_size=1024, verbose=0).argmax(axis=1)
        parts.append(f"{name} {float(np.mean(predicted == y)):.4f}")
    return " ".join(parts)


def _by_label(images: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    return [images[labels == d] for d in range(10)]


def form_crop_sets(
    data: DigitData, seed: int, pages: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Crops the pipeline cuts from generated forms: (train, validation). Training pages
    are written with the training digits, validation pages (a sixth as many) with the
    hold-out digits, so neither shares a digit with the other."""
    from training.forms import DigitBank, form_digit_crops

    train = form_digit_crops(
        DigitBank(data.train_images, data.train_labels), np.random.default_rng(seed), pages
    )
    held_out = DigitBank(data.val_images, data.val_labels)
    val = form_digit_crops(held_out, np.random.default_rng(seed + 1000), max(12, pages // 6))
    return train, (val[0][..., None], val[1])


def validation_sets(data: DigitData, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fixed validation sets: clean MNIST hold-out, augmented printed digits, non-digits."""
    rng = np.random.default_rng(seed + 1000)
    mnist = np.stack([normalize_digit(image) for image in data.val_images])[..., None]
    picks = rng.integers(0, len(data.printed), 2000)
    printed = np.stack([augmented_digit(data.printed[i], rng, p=0.9) for i in picks])[..., None]
    blobs = [synth.non_digit_blob(rng, data.non_digit_glyphs, data.val_images) for _ in range(2000)]
    non_digit = np.stack([_finish(blob, rng) for blob in blobs])[..., None]
    sets = {
        "mnist": (mnist, data.val_labels),
        "printed": (printed, data.printed_labels[picks]),
        "non_digit": (non_digit, np.full(len(non_digit), NOT_A_DIGIT)),
    }
    if data.orand_val:
        sets["orand"] = (np.stack([normalize_digit(c) for c in data.orand_val])[..., None],
                         data.orand_val_labels)  # fmt: skip
        by_label = _by_label(data.val_images, data.val_labels)
        styled = [styles.styled_digit(rng, by_label) for _ in range(2000)]
        sets["styles"] = (np.stack([normalize_digit(g) for g, _ in styled])[..., None],
                          np.array([label for _, label in styled]))  # fmt: skip
    return sets


def build_model(seed: int):
    """Conv-BN-ReLU blocks with strided downsampling, then a small dense head -> logits."""
    import keras
    from keras import layers

    def block(x, filters: int, strides: int = 1):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((DIGIT_SIZE, DIGIT_SIZE, 1), name="digit")
    x = block(inputs, 32)
    x = block(x, 32, strides=2)
    x = block(x, 64)
    x = block(x, 64, strides=2)
    x = block(x, 128)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3, seed=seed)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.2, seed=seed + 1)(x)
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="digits")


def with_temperature(logits_model, temperature: float):
    """The shipped model: logits / T -> softmax, so the file itself gives calibrated scores."""
    import keras
    from keras import layers

    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(logits_model.output)
    probabilities = layers.Softmax(name="probabilities")(scaled)
    return keras.Model(logits_model.input, probabilities, name="digits")


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising validation NLL (a 1-D search is plenty)."""
    best_t, best_nll = 1.0, np.inf
    for temperature in np.exp(np.linspace(np.log(0.3), np.log(8.0), 200)):
        z = logits / temperature
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -log_p[np.arange(len(labels)), labels].mean()
        if nll < best_nll:
            best_t, best_nll = float(temperature), float(nll)
    return best_t


def digit_decisions(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best digit (0-9) and its probability, whatever the non-digit class says."""
    digit_probs = probabilities[:, :NOT_A_DIGIT]
    return digit_probs.argmax(axis=1), digit_probs.max(axis=1)


def accepted(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """A blob reads as a digit when its best digit beats the non-digit class and the threshold."""
    _, confidence = digit_decisions(probabilities)
    return (probabilities.argmax(axis=1) != NOT_A_DIGIT) & (confidence >= threshold)


def pick_threshold(probabilities: np.ndarray) -> float:
    """Highest threshold that rejects at most TARGET_DIGIT_REJECT of true digits."""
    _, confidence = digit_decisions(probabilities)
    return float(np.quantile(confidence, TARGET_DIGIT_REJECT))


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def train_digits(
    data_dir: Path | None,
    out_dir: Path,
    epochs: int,
    seed: int,
    log=print,
    checkpoint: Path | None = None,
    version: str = "1.0",
    init: Path | None = None,
    form_pages: int = 0,
    mix: str = "mnist",
    extra: Path | None = None,
    average: int = 0,
) -> dict:
    """Train, calibrate and save `digits.keras` into `out_dir`; returns the manifest entry.

    `init` continues from an earlier `digits.keras` (its temperature layer is dropped, the
    logits weights kept) at a lower learning rate: a second, shorter stage. `form_pages`
    adds the digit crops the pipeline cuts from that many generated form pages to every
    epoch (and crops from hold-out-digit pages to validation): scans, rules and neighbours
    leave marks on crops that augmenting MNIST alone does not."""
    import keras

    from training.averaging import mean_weights
    from training.manifest import init_note, record_model

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    data = load_digit_data(data_dir, seed, mix)
    val = validation_sets(data, seed)
    form_train = None
    if form_pages:
        form_train, val["form"] = form_crop_sets(data, seed, form_pages)
        log(f"form crops: {len(form_train[1])} train, {len(val['form'][1])} validation")
    if extra is not None:  # reviewed fields (training/corrections.py)
        from training.corrections import with_digit_corrections

        form_train = with_digit_corrections(extra, form_train, log)
    model = build_model(seed)
    epoch_size = len(data.train_labels) + PRINTED_PER_EPOCH + NON_DIGIT_PER_EPOCH
    epoch_size += len(form_train[1]) if form_train is not None else 0
    if data.orand:
        epoch_size += ORAND_REPEATS * len(data.orand) + STYLES_PER_EPOCH
    steps = epochs * int(np.ceil(epoch_size / BATCH_SIZE))
    initial, peak = 1e-3, 3e-3
    if init is not None:
        model.set_weights(keras.models.load_model(init, compile=False).get_weights())
        initial, peak = 2e-4, 6e-4
    schedule = keras.optimizers.schedules.CosineDecay(
        initial, steps, warmup_target=peak, warmup_steps=min(300, steps // 10)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    val_x = np.concatenate([v[0] for v in val.values()])
    val_y = np.concatenate([v[1] for v in val.values()])
    best_accuracy, best_weights, best_epoch = -1.0, None, 0
    averaged: list[list[np.ndarray]] = []  # weights at the end of the last `average` epochs
    kept_average = 0  # epochs in the shipped average (0: one epoch's weights)
    if init is not None:  # a continued stage never ships weights worse than it started from
        _, best_accuracy = model.evaluate(val_x, val_y, batch_size=1024, verbose=0)
        best_weights = model.get_weights()
        log(f"digits epoch 0 (init): val acc {best_accuracy:.4f} {_per_set(model, val)}")
    for epoch in range(epochs):
        x, y = build_epoch(data, rng, PRINTED_PER_EPOCH, NON_DIGIT_PER_EPOCH, form_train)
        history = model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=False)
        _, accuracy = model.evaluate(val_x, val_y, batch_size=1024, verbose=0)
        log(
            f"digits epoch {epoch + 1}/{epochs}: loss {history.history['loss'][-1]:.4f} "
            f"val acc {accuracy:.4f} {_per_set(model, val)} ({time.monotonic() - started:.0f}s)"
        )
        # Checkpoint picking uses the hold-out of MNIST train, never t10k.
        if accuracy >= best_accuracy:
            best_accuracy, best_weights, best_epoch = accuracy, model.get_weights(), epoch + 1
            if checkpoint is not None:  # uncalibrated (T=1), for early integration only
                with_temperature(model, 1.0).save(checkpoint)
        if epoch >= epochs - average:
            averaged.append(model.get_weights())
    if len(averaged) > 1:
        model.set_weights(mean_weights(averaged))
        _, accuracy = model.evaluate(val_x, val_y, batch_size=1024, verbose=0)
        log(f"digits average of the last {len(averaged)} epochs: val acc {accuracy:.4f} "
            f"{_per_set(model, val)}")  # fmt: skip
        if accuracy > best_accuracy:
            best_accuracy, best_weights = accuracy, model.get_weights()
            best_epoch, kept_average = epochs, len(averaged)
    model.set_weights(best_weights)

    logits = model.predict(val_x, batch_size=1024, verbose=0)
    temperature = fit_temperature(logits, val_y)
    shipped = with_temperature(model, temperature)
    probabilities = shipped.predict(val["mnist"][0], batch_size=1024, verbose=0)
    threshold = pick_threshold(probabilities)
    train_seconds = time.monotonic() - started

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "digits.keras"
    shipped.save(path)
    metrics = evaluate_digits(shipped, data_dir, threshold, seed)
    metrics["validation_accuracy"] = round(float(best_accuracy), 5)
    metrics["best_epoch"] = best_epoch
    metrics["averaged_epochs"] = kept_average
    metrics["train_seconds"] = round(train_seconds)
    log(f"digits metrics: {metrics}")
    return record_model(
        out_dir,
        "digits",
        path,
        {
            "name": "digits",
            "version": version,
            "input": {"shape": [None, DIGIT_SIZE, DIGIT_SIZE, 1], "dtype": "float32",
                      "range": [0, 1], "preprocess": "ocrd.normalize.normalize_digit"},
            "output": "softmax over 11 classes: digits 0-9, then 10 = not a digit",
            "training_data": (
                f"MNIST train less a {VALIDATION_SIZE}-image seeded hold-out, augmented "
                "(affine, stroke width, breaks, blur, border bits, noise); printed digits from "
                f"{len(synth.all_fonts())} fonts; non-digit blobs (letters, box lines, smudges, "
                "noise, fragments)"
                + (f"; digit crops cut by the pipeline from {form_pages} generated form pages"
                   if form_pages else "")
                + (f"; ORAND-CAR-A digit boxes of the training part ({len(data.orand)}, "
                   f"x{ORAND_REPEATS}); {STYLES_PER_EPOCH} style variants per epoch "
                   "(training/styles.py: flagged 1, crossed 7, open/closed 4, straight 9, "
                   f"{len(styles.handwriting_fonts())} handwriting fonts)" if data.orand else "")
            ),
            "seed": seed,
            "epochs": epochs,
            "init_from": init_note(init),
            "temperature": round(temperature, 4),
            "reject_threshold": round(threshold, 4),
            "metrics": metrics,
        },
    )  # fmt: skip


def non_digit_test_set(data_dir: Path | None, seed: int, count: int = 5000) -> np.ndarray:
    """Non-digit blobs from a seed stream unused in training, fragments taken from t10k."""
    rng = np.random.default_rng(seed + 777_777)
    t10k_images, _ = load_mnist("t10k", data_dir)
    glyphs, _ = synth.printed_glyphs(synth.NON_DIGIT_CHARS)
    blobs = [synth.non_digit_blob(rng, glyphs, t10k_images) for _ in range(count)]
    return np.stack([_finish(blob, rng) for blob in blobs])[..., None]


def evaluate_digits(model, data_dir: Path | None, threshold: float, seed: int = 0) -> dict:
    """t10k accuracy (raw and re-normalised), confusion matrix, reject rates."""
    images, labels = load_mnist("t10k", data_dir)
    normalised = np.stack([normalize_digit(image) for image in images])[..., None]
    raw = (images.astype(np.float32) / 255.0)[..., None]
    probabilities = model.predict(normalised, batch_size=1024, verbose=0)
    predicted, _ = digit_decisions(probabilities)
    raw_predicted, _ = digit_decisions(model.predict(raw, batch_size=1024, verbose=0))
    blobs = model.predict(non_digit_test_set(data_dir, seed), batch_size=1024, verbose=0)
    rng = np.random.default_rng(seed + 4242)
    printed, printed_labels = synth.printed_glyphs("0123456789")
    picks = rng.integers(0, len(printed), 3000)
    printed_x = np.stack([augmented_digit(printed[i], rng, p=0.9) for i in picks])[..., None]
    printed_predicted, _ = digit_decisions(model.predict(printed_x, batch_size=1024, verbose=0))
    return {
        "t10k_accuracy": round(float((predicted == labels).mean()), 5),
        "t10k_accuracy_raw_mnist_pixels": round(float((raw_predicted == labels).mean()), 5),
        "t10k_confusion": confusion_matrix(labels, predicted, 10).tolist(),
        "t10k_digits_rejected": round(float(1 - accepted(probabilities, threshold).mean()), 5),
        "non_digits_accepted": round(float(accepted(blobs, threshold).mean()), 5),
        "printed_accuracy_augmented": round(
            float((printed_predicted == printed_labels[picks]).mean()), 5
        ),
    }
