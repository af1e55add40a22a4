"""`python -m training calibrate`: fit the field-confidence calibration for the shipped models.

Held-out material only (never MNIST t10k, never the ORAND-CAR-A hold-out):
- generated form pages written with the MNIST-train hold-out digits (every degradation);
- the ORAND-CAR-A validation tenth as whole field images, plus synthetic field images of
  strings of MNIST-train hold-out digits scanned on cheque-like paper (`training/paper.py`).
Each field read by the pipeline (raw fused confidence) is matched to its truth; a Platt map
per layout family (`ocrd.calibration`) is fitted; the default accept threshold is the lowest
at which at most TARGET_ERROR of the accepted fields are wrong, over all families, raised for
a family whose own fields need a higher one (field images).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ocrd.calibration import CALIBRATION_FILE, Calibration, family, fit_platt
from ocrd.types import Page
from training import paper

TARGET_ERROR = 0.005
FORM_SEED = 5150
Sample = tuple[float, str, bool]  # raw confidence, layout, right


def form_samples(recognizer, pages_per_degradation: int, log=print) -> list[Sample]:
    from ocrd.pipeline import read_fields
    from ocrd.vision import find_fields
    from training.forms import DEGRADATIONS, DigitBank, best_match, render_page

    bank = DigitBank.holdout()
    rng = np.random.default_rng(FORM_SEED)
    samples: list[Sample] = []
    for _ in range(pages_per_degradation):
        for degradation in DEGRADATIONS:
            dpi = int(rng.choice([150, 200, 300, 400, 600]))
            page = render_page(bank, rng, dpi=dpi, degradation=degradation)
            fields = find_fields(Page(1, page.image, page.dpi))
            readings = read_fields(fields, recognizer, calibrated=False)
            found = [(f, r) for f, r in zip(fields, readings, strict=True) if r is not None]
            for truth in page.fields:
                best = best_match([f.box for f, _ in found], truth.box)
                if best is not None:
                    field, reading = found[best]
                    samples.append((reading.confidence, field.layout, reading.text == truth.text))
    log(f"calibration: {len(samples)} form fields")
    return samples


def field_images(data_dir: Path | None, synthetic: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """(grey image, text): the ORAND validation tenth and synthetic hold-out-digit strings."""
    from training.digits import VALIDATION_SPLIT_SEED
    from training.readers import load_orand_car_a, split_holdout
    from training.sequence import (
        ORAND_VAL_FRACTION,
        compose_string,
        load_sequence_data,
        random_text,
    )

    train, _holdout = split_holdout(load_orand_car_a(data_dir))
    _fit, val = split_holdout(train, ORAND_VAL_FRACTION, VALIDATION_SPLIT_SEED)
    images = [(cv2.imread(str(s.path), cv2.IMREAD_GRAYSCALE), s.text) for s in val]
    data = load_sequence_data(data_dir, seed)
    rng = np.random.default_rng(seed + 77)
    for _ in range(synthetic):
        text = random_text(rng, int(rng.integers(1, 9)))
        pools = data.val_digits_by_label
        glyphs = [pools[int(c)][int(rng.integers(len(pools[int(c)])))] for c in text]
        canvas = compose_string(glyphs, rng, handwritten=True, separators=True)
        images.append((paper.scan(canvas, rng), text))
    return [(image, text) for image, text in images if image is not None]


def field_samples(recognizer, images: list[tuple[np.ndarray, str]], log=print) -> list[Sample]:
    from ocrd.pipeline import read_fields
    from ocrd.vision import find_fields

    samples: list[Sample] = []
    for image, text in images:
        fields = find_fields(Page(1, image, 0), "field")
        readings = [r for r in read_fields(fields, recognizer, calibrated=False) if r]
        if len(readings) == 1:
            samples.append((readings[0].confidence, "field", readings[0].text == text))
        else:
            samples.append((0.0, "field", False))
    log(f"calibration: {len(samples)} field images")
    return samples


def accept_threshold(calibration: Calibration, samples: list[Sample]) -> float:
    """The lowest calibrated threshold with at most TARGET_ERROR wrong among accepted."""
    scored = sorted(((calibration.probability(raw, layout), right)
                     for raw, layout, right in samples), reverse=True)  # fmt: skip
    best, wrong = 1.0, 0
    for index, (probability, right) in enumerate(scored, start=1):
        wrong += not right
        if wrong / index <= TARGET_ERROR:
            best = probability
    return round(max(0.5, best), 4)


def calibrate(models_dir: Path, data_dir: Path | None, pages: int = 8, synthetic: int = 300,
              seed: int = 1, log=print) -> Calibration:  # fmt: skip
    from ocrd.recognition import Recognizer

    recognizer = Recognizer(models_dir)
    samples = form_samples(recognizer, pages, log)
    samples += field_samples(recognizer, field_images(data_dir, synthetic, seed), log)
    by_family: dict[str, list[Sample]] = {}
    for sample in samples:
        by_family.setdefault(family(sample[1]), []).append(sample)
    params = {}
    for name, chosen in sorted(by_family.items()):
        right = [r for _, _, r in chosen]
        if len(chosen) >= 30 and 0 < sum(right) < len(chosen):
            params[name] = fit_platt([raw for raw, _, _ in chosen], right)
            log(f"calibration: {name}: {len(chosen)} fields, "
                f"{np.mean(right):.1%} right, a, b = {params[name]}")  # fmt: skip
    fitted = Calibration(params, models=recognizer.model_name)
    overall = accept_threshold(fitted, samples)
    # A family's own threshold only ever raises the overall one: fitted on fewer fields,
    # a lower one accepted 0.87% wrong on t10k forms where the overall kept 0.31%.
    accept = {name: max(overall, accept_threshold(fitted, by_family[name])) for name in params}
    calibration = Calibration(params, overall, fitted.models, accept)
    (models_dir / CALIBRATION_FILE).write_text(calibration.to_json() + "\n")
    log(f"calibration: accept thresholds {accept}, otherwise "
        f"{calibration.accept_confidence} -> {models_dir / CALIBRATION_FILE}")  # fmt: skip
    return calibration
