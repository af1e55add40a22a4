"""Short real training runs of both models (slow: run with --run-slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ocrd.recognition import Recognizer
from training import digits, sequence
from training.readers import default_data_dir

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _small_runs(monkeypatch):
    """Cut the epoch sizes so a run takes a minute or two, keeping every code path."""
    if not (default_data_dir() / "mnist").is_dir():
        pytest.skip("MNIST not available")
    original_load = digits.load_digit_data

    def small_digit_data(data_dir, seed, mix="mnist"):
        data = original_load(data_dir, seed, mix)
        data.train_images, data.train_labels = data.train_images[:4000], data.train_labels[:4000]
        return data

    monkeypatch.setattr(digits, "load_digit_data", small_digit_data)
    monkeypatch.setattr(digits, "PRINTED_PER_EPOCH", 1000)
    monkeypatch.setattr(digits, "NON_DIGIT_PER_EPOCH", 1000)
    monkeypatch.setattr(sequence, "EPOCH_SIZE", 480)
    original_t10k = sequence.t10k_strings
    monkeypatch.setattr(
        sequence, "t10k_strings", lambda data_dir, seed, per_length=200, degrade=True: (
            original_t10k(data_dir, seed, 10, degrade))
    )  # fmt: skip


def test_digit_training_writes_a_verified_model_and_learns(tmp_path):
    entry = digits.train_digits(None, tmp_path, epochs=2, seed=3, log=lambda _: None)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["models"]["digits"]["sha256"] == entry["sha256"]
    assert entry["seed"] == 3 and entry["temperature"] > 0
    # 2 short epochs on 4,000 digits among as many printed and non-digit crops: 0.50 measured
    # (2026-12-01); chance is 0.1, so well above it means the trainer learns.
    assert entry["metrics"]["t10k_accuracy"] > 0.3
    recognizer = Recognizer(tmp_path)
    labels, _ = recognizer.recognize_digits(np.zeros((2, 28, 28), np.float32))
    assert labels.shape == (2,)


def test_digit_training_is_reproducible(tmp_path):
    first = digits.train_digits(None, tmp_path / "a", epochs=1, seed=5, log=lambda _: None)
    second = digits.train_digits(None, tmp_path / "b", epochs=1, seed=5, log=lambda _: None)
    assert first["metrics"]["t10k_accuracy"] == pytest.approx(
        second["metrics"]["t10k_accuracy"], abs=0.01
    )


def test_sequence_training_writes_a_loadable_model(tmp_path):
    digits.train_digits(None, tmp_path, epochs=1, seed=3, log=lambda _: None)
    entry = sequence.train_sequence(None, tmp_path, epochs=1, seed=3, log=lambda _: None)
    assert set(entry["metrics"]["t10k_string_accuracy_by_length"]) == {str(n) for n in range(1, 13)}
    recognizer = Recognizer(tmp_path)
    assert recognizer.has_line_model
    texts, confidences = recognizer.recognize_lines([np.zeros((32, 64), np.float32)])
    assert len(texts) == 1 and len(confidences) == 1


def test_a_continued_stage_starts_from_its_init_and_records_it(tmp_path):
    from ocrd.recognition import MODELS_DIR
    from training.manifest import sha256_of

    shipped = MODELS_DIR / "digits.keras"
    logged: list[str] = []
    entry = digits.train_digits(
        None, tmp_path, epochs=1, seed=4, log=logged.append, init=shipped, version="9.9"
    )
    assert entry["init_from"] == f"digits.keras sha256 {sha256_of(shipped)}"
    assert entry["version"] == "9.9"
    assert logged[0].startswith("digits epoch 0 (init)")
    # It starts from trained weights, not from scratch: one short epoch is already accurate.
    assert entry["metrics"]["t10k_accuracy"] > 0.98


def test_digit_training_can_add_crops_cut_from_generated_forms(tmp_path):
    logged: list[str] = []
    entry = digits.train_digits(None, tmp_path, epochs=1, seed=6, log=logged.append, form_pages=2)
    [line] = [m for m in logged if m.startswith("form crops:")]
    train_count, val_count = (int(part.split()[0]) for part in line[12:].split(","))
    assert train_count >= 40 and val_count >= 40
    assert "2 generated form pages" in entry["training_data"]


def test_a_stage_can_average_its_last_epochs(tmp_path):
    logged: list[str] = []
    entry = digits.train_digits(None, tmp_path, epochs=2, seed=5, log=logged.append, average=2)
    assert any(line.startswith("digits average of the last 2 epochs") for line in logged)
    assert entry["metrics"]["averaged_epochs"] in (0, 2)  # kept only when it beats each epoch


def test_a_line_stage_can_average_its_last_epochs(tmp_path):
    logged: list[str] = []
    entry = sequence.train_sequence(None, tmp_path, epochs=2, seed=6, log=logged.append, average=2)
    assert any(line.startswith("sequence average of the last 2 epochs") for line in logged)
    assert entry["metrics"]["averaged_epochs"] in (0, 2)
