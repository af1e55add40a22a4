"""Figures for the shipped models: accuracy, reject rates, and inference throughput.

    python bench/models.py                 # everything (a few minutes on 2 CPU cores)
    python bench/models.py --throughput    # only digits/s and strings/s

Accuracy figures are recomputed here from ../shared/data (MNIST t10k for digits; strings
composed only from t10k digits; printed strings; the ORAND-CAR-A hold-out), not read
from the manifest.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocrd.normalize import normalize_digit  # noqa: E402
from ocrd.recognition import load_recognizer  # noqa: E402

BATCH_SIZES = (1, 32, 256)


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()}-core CPU ({platform.processor() or 'cpu'})"


def _rate(function, items: int, min_seconds: float = 2.0) -> float:
    function()  # warm-up (first call traces)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_seconds:
        function()
        calls += 1
    return calls * items / (time.perf_counter() - started)


def throughput(recognizer) -> None:
    from training.readers import load_mnist
    from training.sequence import t10k_strings

    images, _ = load_mnist("t10k")
    digits = np.stack([normalize_digit(image) for image in images[:256]])
    print("\nthroughput (model only, inputs already normalised)")
    for size in BATCH_SIZES:
        batch = digits[:size]
        rate = _rate(lambda b=batch: recognizer.recognize_digits(b), size)
        print(f"  digits  batch {size:>3}: {rate:10.0f} digits/s")
    if recognizer.has_line_model:
        lines = [line for line, _ in t10k_strings(None, 1, per_length=22)][:256]
        lines = [lines[i] for i in np.random.default_rng(0).permutation(len(lines))]
        mean_digits = np.mean([line.shape[1] for line in lines])
        print(f"  (line widths: mean {mean_digits:.0f} px, lengths 1-12)")
        for size in BATCH_SIZES:
            batch = lines[:size]
            rate = _rate(lambda b=batch: recognizer.recognize_lines(b), size)
            print(f"  strings batch {size:>3}: {rate:10.0f} strings/s")


def accuracy(recognizer, seed: int) -> None:
    from training.digits import evaluate_digits
    from training.sequence import evaluate_sequence

    started = time.perf_counter()
    digits = evaluate_digits(recognizer.digit_model, None, recognizer.reject_threshold, seed)
    print(f"\nMNIST t10k accuracy (normalize_digit inputs): {digits['t10k_accuracy']:.4%}")
    print(f"MNIST t10k accuracy (raw MNIST pixels):      "
          f"{digits['t10k_accuracy_raw_mnist_pixels']:.4%}")  # fmt: skip
    print(f"printed digits (augmented font renders):     "
          f"{digits['printed_accuracy_augmented']:.4%}")  # fmt: skip
    print(f"reject threshold {recognizer.reject_threshold:.3f}: "
          f"true t10k digits rejected {digits['t10k_digits_rejected']:.3%}, "
          f"non-digit blobs accepted {digits['non_digits_accepted']:.3%}")  # fmt: skip
    print("confusion matrix (rows: truth 0-9, columns: predicted 0-9)")
    for digit, row in enumerate(digits["t10k_confusion"]):
        print(f"  {digit}: " + " ".join(f"{count:5d}" for count in row))
    if recognizer.has_line_model:
        lines = evaluate_sequence(recognizer.line_model, None, seed)
        print(f"\nstrings from t10k digits, lengths 1-12: {lines['t10k_string_accuracy']:.3%}")
        print("  by length: " + ", ".join(
            f"{k}: {v:.1%}" for k, v in lines["t10k_string_accuracy_by_length"].items()
        ))  # fmt: skip
        print(f"  the same kind of strings without slant/stroke-width/blur/noise: "
              f"{lines['t10k_string_accuracy_undegraded']:.3%}")  # fmt: skip
        print(f"printed strings: {lines['printed_string_accuracy']:.3%}")
        print(f"ORAND-CAR-A hold-out ({lines['orand_holdout_size']} images): "
              f"{lines['orand_holdout_string_accuracy']:.3%}")  # fmt: skip
    print(f"(evaluation took {time.perf_counter() - started:.0f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput", action="store_true", help="only measure throughput")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic test sets")
    args = parser.parse_args()
    started = time.perf_counter()
    recognizer = load_recognizer()
    print(f"models: {recognizer.model_name}   machine: {machine()}")
    print(f"load (TensorFlow import + 2 models + sha256): {time.perf_counter() - started:.1f}s")
    if not args.throughput:
        accuracy(recognizer, args.seed)
    throughput(recognizer)


if __name__ == "__main__":
    main()
