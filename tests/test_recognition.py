"""ocrd.recognition with the real shipped weights: integrity checks, digits, lines, decoding."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ocrd import recognition
from ocrd.normalize import LINE_HEIGHT, normalize_digit, normalize_line
from ocrd.recognition import (
    CTC_BLANK,
    ModelIntegrityError,
    Recognizer,
    greedy_decode,
    load_recognizer,
)
from training import synth
from training.readers import default_data_dir, load_mnist

FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return load_recognizer()


def _font(name: str):
    for path in synth.font_files():
        if path.name == name:
            return path
    pytest.skip(f"font {name} not installed")


def _printed(text: str, font_name: str) -> np.ndarray:
    return synth.render_text(text, _font(font_name), size=48)


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_importing_recognition_is_silent_and_does_not_load_tensorflow():
    code = "import sys, ocrd.recognition; print('tensorflow' in sys.modules)"
    result = _run_python(code)
    assert result.stdout.strip() == "False"
    assert result.stderr == ""


def test_loading_is_cached_and_quiet():
    code = (
        "from ocrd.recognition import load_recognizer as l; r = l(); "
        "assert r is l(); print(r.model_name)"
    )
    result = _run_python(code)
    assert result.stdout.strip().startswith("digits@")
    assert result.stderr == ""  # no TensorFlow start-up banners


def test_model_name_lists_the_shipped_models(recognizer):
    manifest = json.loads((recognition.MODELS_DIR / "manifest.json").read_text())
    digits = manifest["models"]["digits"]
    assert recognizer.model_name.split("+")[0] == f"{digits['name']}@{digits['version']}"
    total = sum(entry["size_bytes"] for entry in manifest["models"].values())
    assert total <= 20 * 1024 * 1024


@pytest.mark.parametrize("font_name", FONTS)
def test_digits_rendered_from_a_font(recognizer, font_name):
    crops = np.stack([normalize_digit(_printed(str(d), font_name)) for d in range(10)])
    labels, confidences = recognizer.recognize_digits(crops)
    assert labels.tolist() == list(range(10))
    assert confidences.shape == (10,) and (confidences > 0.5).all()
    assert all(p.is_digit for p in recognizer.read_digits(crops))


def test_mnist_t10k_sample(recognizer):
    try:
        images, truth = load_mnist("t10k")
    except ValueError:
        pytest.skip(f"MNIST not under {default_data_dir()}")
    crops = np.stack([normalize_digit(image) for image in images[:300]])
    labels, _ = recognizer.recognize_digits(crops)
    assert (labels == truth[:300]).mean() >= 0.98


def test_blank_and_letters_are_not_digits(recognizer):
    blobs = [np.zeros((28, 28), np.float32)]
    blobs += [normalize_digit(_printed(c, "DejaVuSans.ttf")) for c in "KMNWX#%"]
    predictions = recognizer.read_digits(np.stack(blobs))
    assert sum(not p.is_digit for p in predictions) >= len(blobs) - 1


def test_batching_and_padding_do_not_change_results(recognizer):
    rng = np.random.default_rng(0)
    batch = rng.random((37, 28, 28)).astype(np.float32) ** 4
    together = recognizer.digit_probabilities(batch)
    one_by_one = np.concatenate([recognizer.digit_probabilities(b[None]) for b in batch[:5]])
    assert np.allclose(together[:5], one_by_one, atol=1e-5)
    assert together.shape == (37, 11)
    big = recognizer.digit_probabilities(np.repeat(batch[:1], 300, axis=0))
    assert big.shape == (300, 11) and np.allclose(big[299], together[0], atol=1e-5)
    prediction = recognizer.read_digits(batch[:1])[0]
    assert prediction.runner_up != prediction.label
    assert prediction.confidence >= prediction.runner_up_confidence
    with pytest.raises(ValueError):
        recognizer.recognize_digits(np.zeros((2, 20, 20), np.float32))


def _copy_models(tmp_path):
    target = tmp_path / "models"
    shutil.copytree(recognition.MODELS_DIR, target, ignore=shutil.ignore_patterns("__*"))
    return target


def test_sha256_mismatch_is_a_clear_error(tmp_path):
    models = _copy_models(tmp_path)
    with open(models / "digits.keras", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelIntegrityError, match=r"digits\.keras.*sha256"):
        Recognizer(models)


def test_missing_model_file_and_manifest(tmp_path):
    models = _copy_models(tmp_path)
    (models / "digits.keras").unlink()
    with pytest.raises(ModelIntegrityError, match=r"missing: .*digits\.keras"):
        Recognizer(models)
    (models / "manifest.json").unlink()
    with pytest.raises(ModelIntegrityError, match="manifest missing"):
        Recognizer(models)


def test_greedy_decode_collapses_repeats_and_blanks():
    # frames: 3 3 _ 3 _ _ 7 7  -> "337"
    symbols = [3, 3, CTC_BLANK, 3, CTC_BLANK, CTC_BLANK, 7, 7]
    probabilities = np.full((len(symbols), 11), 0.01, np.float32)
    for frame, symbol in enumerate(symbols):
        probabilities[frame, symbol] = 0.9
    probabilities[1, 3] = 0.6
    prediction = greedy_decode(probabilities, len(symbols))
    assert prediction.text == "337"
    assert prediction.confidences == pytest.approx([0.9, 0.9, 0.9])
    assert prediction.positions[0] < prediction.positions[1] < prediction.positions[2]
    assert prediction.positions[2] == pytest.approx(6.5 * 4 + 2)
    assert prediction.confidence == pytest.approx(0.9**3)
    assert greedy_decode(probabilities, 0).text == ""


@pytest.fixture(scope="module")
def line_recognizer(recognizer) -> Recognizer:
    if not recognizer.has_line_model:
        pytest.skip("no line model shipped")
    return recognizer


@pytest.mark.parametrize("font_name", FONTS)
def test_printed_strings(line_recognizer, font_name):
    texts = ["7", "31415", "2026", "9081726354", "444"]
    lines = [normalize_line(_printed(text, font_name)) for text in texts]
    predictions = line_recognizer.read_lines(lines)
    assert [p.text for p in predictions] == texts
    for prediction, line in zip(predictions, lines, strict=True):
        assert len(prediction.confidences) == len(prediction.text)
        assert all(0 < c <= 1 for c in prediction.confidences)
        assert prediction.positions == sorted(prediction.positions)
        assert prediction.positions[0] >= 0 and prediction.positions[-1] <= line.shape[1]


def test_line_api_shapes_and_errors(line_recognizer):
    lines = [normalize_line(_printed("123", "DejaVuSans.ttf")), np.zeros((LINE_HEIGHT, 40))]
    texts, confidences = line_recognizer.recognize_lines(lines)
    assert texts[0] == "123" and texts[1] == ""
    assert len(confidences[0]) == 3 and confidences[1] == []
    assert line_recognizer.recognize_lines([]) == ([], [])
    with pytest.raises(ValueError):
        line_recognizer.recognize_lines([np.zeros((20, 50))])


def test_savedmodel_export_serves_the_same_scores(tmp_path, recognizer):
    import tensorflow as tf

    from training.export import export_saved_models

    exported = export_saved_models(recognition.MODELS_DIR, tmp_path)
    assert {path.parent.name for path in exported} >= {"digits"}
    served = tf.saved_model.load(str(tmp_path / "digits" / "1"))
    crops = np.stack([normalize_digit(_printed(str(d), "DejaVuSans.ttf")) for d in range(3)])
    scores = served.serve(tf.constant(crops[..., None]))
    assert np.allclose(scores.numpy(), recognizer.digit_probabilities(crops), atol=1e-5)
    if recognizer.has_line_model:
        lines = tf.saved_model.load(str(tmp_path / "lines" / "1"))
        line = normalize_line(_printed("2718", "DejaVuSans.ttf"))
        width = -(-line.shape[1] // 32) * 32
        padded = np.zeros((1, LINE_HEIGHT, width, 1), np.float32)
        padded[0, :, : line.shape[1], 0] = line
        frames = lines.serve(tf.constant(padded)).numpy()[0]
        assert greedy_decode(frames, -(-line.shape[1] // 4)).text == "2718"


def test_a_grown_line_model_starts_out_reading_exactly_as_the_plain_one(line_recognizer):
    from training.sequence import build_model, grow_from, is_residual

    plain = line_recognizer.line_model
    grown = build_model(seed=0, residual=True)
    assert is_residual(grown) and not is_residual(plain)
    assert grown.count_params() > plain.count_params()
    grow_from(grown, plain)
    lines = np.random.default_rng(3).random((2, LINE_HEIGHT, 96, 1)).astype(np.float32)
    logits = np.asarray(grown(lines, training=False))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(probabilities, np.asarray(plain(lines, training=False)), atol=1e-5)
    with pytest.raises(ValueError, match="plain line-model layout"):
        grow_from(build_model(seed=0, residual=True), grown)
