"""The converted LiteRT models: shipped in step with the Keras files, same labels as Keras on a
fixed set of pipeline crops, and a stale or damaged conversion falls back to Keras."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocrd import litert, recognition
from ocrd.recognition import Recognizer, file_sha256

pytestmark = pytest.mark.skipif(not litert.available(), reason="ai-edge-litert not installed")


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> tuple[np.ndarray, list[np.ndarray]]:
    """Digit and line crops the pipeline cuts from 6 generated form pages (t10k digits, fixed
    seed: the same set every run), plus printed strings."""
    from ocrd.normalize import normalize_line
    from ocrd.pipeline import extract_fields
    from training import synth
    from training.forms import generate

    folder = tmp_path_factory.mktemp("forms")
    try:
        pages = generate(folder, pages=6, seed=1515, split="t10k", fmt="png", dpi=200)
    except ValueError:
        pytest.skip("MNIST not available")
    digits, lines = [], []
    for page_file in pages:
        for _, fields in extract_fields(page_file):
            for field in fields:
                digits += field.digit_crops
                if field.line_crop is not None:
                    lines.append(field.line_crop)
    font = synth.font_files()[0]
    lines += [normalize_line(synth.render_text(t, font, size=48)) for t in ("7", "2026", "31415")]
    return np.stack(digits).astype(np.float32), lines


@pytest.fixture(scope="module")
def both() -> tuple[Recognizer, Recognizer]:
    lite, keras = Recognizer(runtime="litert"), Recognizer(runtime="keras")
    assert (lite.runtime, keras.runtime) == ("litert", "keras")
    return lite, keras


def test_shipped_conversions_are_listed_and_made_from_the_shipped_keras_files():
    manifest = json.loads((recognition.MODELS_DIR / "manifest.json").read_text())
    for key, entry in manifest["models"].items():
        converted = manifest[litert.SECTION][key]
        assert converted["source_sha256"] == entry["sha256"], (
            f"{converted['file']} is stale: run `python -m training export --litert`"
        )
        assert file_sha256(recognition.MODELS_DIR / converted["file"]) == converted["sha256"]


def test_litert_reads_the_same_labels_as_keras(both, crops):
    lite, keras = both
    digits, lines = crops
    assert len(digits) > 100 and len(lines) > 20
    for got, want in zip(lite.read_digits(digits), keras.read_digits(digits), strict=True):
        assert (got.label, got.is_digit, got.runner_up) == (
            want.label,
            want.is_digit,
            want.runner_up,
        )
        assert got.confidence == pytest.approx(want.confidence, abs=1e-4)
    np.testing.assert_allclose(
        lite.digit_probabilities(digits), keras.digit_probabilities(digits), atol=1e-4
    )
    got_lines, want_lines = lite.read_lines(lines), keras.read_lines(lines)
    assert [p.text for p in got_lines] == [p.text for p in want_lines]
    for got, want in zip(got_lines, want_lines, strict=True):
        np.testing.assert_allclose(got.confidences, want.confidences, atol=1e-4)


def _copy_models(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(recognition.MODELS_DIR, target, ignore=shutil.ignore_patterns("__*"))
    return target


def test_a_conversion_of_other_keras_weights_falls_back_to_keras(tmp_path):
    models = _copy_models(tmp_path)
    manifest_file = models / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest[litert.SECTION]["lines"]["source_sha256"] = "0" * 64  # new lines.keras shipped
    manifest_file.write_text(json.dumps(manifest))
    assert Recognizer(models, runtime="litert").runtime == "keras"


def test_a_damaged_or_missing_conversion_falls_back_to_keras(tmp_path):
    models = _copy_models(tmp_path)
    with open(models / "digits.tflite", "ab") as handle:
        handle.write(b"tampered")
    assert Recognizer(models, runtime="litert").runtime == "keras"
    (models / "digits.tflite").unlink()
    assert Recognizer(models, runtime="litert").runtime == "keras"
    manifest = json.loads((models / "manifest.json").read_text())
    del manifest[litert.SECTION]
    (models / "manifest.json").write_text(json.dumps(manifest))
    assert Recognizer(models, runtime="litert").runtime == "keras"


def test_loading_the_litert_runtime_does_not_import_tensorflow():
    code = (
        "import sys; from ocrd.recognition import load_recognizer; r = load_recognizer(); "
        "import numpy as np; r.read_digits(np.zeros((2, 28, 28), np.float32)); "
        "print(r.runtime, 'tensorflow' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin", "OCRD_RUNTIME": "auto"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.split() == ["litert", "False"]
    assert result.stderr == ""  # no XNNPACK banner


def test_export_converts_new_keras_weights_in_one_command(tmp_path, crops):
    """What the lead runs after shipping new weights: the copy's conversion is recorded
    against its own Keras files and reads as they do."""
    models = _copy_models(tmp_path)
    for converted in models.glob("*.tflite"):
        converted.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "training", "export", "--litert", "--out", str(models)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((models / "manifest.json").read_text())
    for key, entry in manifest["models"].items():
        assert manifest[litert.SECTION][key]["source_sha256"] == entry["sha256"]
    fresh = Recognizer(models, runtime="litert")
    assert fresh.runtime == "litert"
    digits, _ = crops
    shipped = Recognizer(runtime="litert")
    np.testing.assert_allclose(
        fresh.digit_probabilities(digits[:50]), shipped.digit_probabilities(digits[:50]), atol=1e-6
    )


def test_batch_plan_covers_every_row_with_little_padding():
    sizes = (1, 2, 4, 8, 16, 32)
    for count in range(1, 200):
        plan = litert.batch_plan(count, sizes)
        assert sum(plan) >= count and sum(plan[:-1]) < count
        assert sum(plan) - count <= plan[-1] // 4  # a quarter of the padded call at most
    assert litert.batch_plan(7, sizes) == [8]
    assert litert.batch_plan(11, sizes) == [8, 4]
    assert litert.batch_plan(70, sizes) == [32, 32, 8]


def test_the_line_model_runs_batches_as_it_runs_single_lines(both, crops):
    """One signature per static batch size: a batch of lines (padded to one width) gives each
    line the output it gets alone, and the Keras model's."""
    lite, keras = both
    _, lines = crops
    line_model = lite._line_fn.__self__
    assert line_model.batch_sizes == (1, 2, 4, 8, 16, 32)
    width = 256
    batch = np.zeros((11, 32, width, 1), np.float32)
    for row, line in enumerate(lines[:11]):
        batch[row, :, : min(width, line.shape[1]), 0] = line[:, :width]
    together = line_model.run(batch)
    alone = np.concatenate([line_model.run(batch[i : i + 1]) for i in range(len(batch))])
    assert together.shape == (11, width // 4, 11)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, keras._line_fn(batch), atol=1e-4)
