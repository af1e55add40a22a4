"""`python -m training export`: the shipped Keras models as SavedModels for TensorFlow Serving."""

from __future__ import annotations

from pathlib import Path


def export_saved_models(models_dir: Path, out_dir: Path) -> list[Path]:
    """Write `<out>/<name>/1/` (Serving's versioned layout) for each model in the manifest."""
    from ocrd.recognition import Recognizer

    recognizer = Recognizer(models_dir)
    exported = []
    models = {"digits": recognizer.digit_model, "lines": recognizer.line_model}
    for key, entry in recognizer.manifest["models"].items():
        model = models.get(key)
        if model is None:
            continue
        target = Path(out_dir) / entry["name"] / "1"
        target.parent.mkdir(parents=True, exist_ok=True)
        model.export(str(target), format="tf_saved_model", verbose=False)
        exported.append(target)
    return exported


# The line model's GRU only converts with a static batch (its state shape), so it is
# converted once per batch size: one signature `batch_<n>` per size in one file, widths
# dynamic in each; the runner splits a batch of lines over these sizes. The digit model
# takes any batch in its one signature.
LINE_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
LITERT_INPUTS = {"digits": (None, 28, 28, 1), "lines": (None, 32, None, 1)}


def _saved_model(model, key: str, folder: str) -> list[str] | None:
    """Write `model` as a SavedModel for the converter; the signature keys to convert
    (None: the default one)."""
    import keras
    import tensorflow as tf

    from ocrd.litert import batch_signature

    if key != "lines":
        spec = tf.TensorSpec(LITERT_INPUTS[key], tf.float32)
        model.export(folder, format="tf_saved_model", verbose=False, input_signature=[spec])
        return None
    archive = keras.export.ExportArchive()
    archive.track(model)
    for size in LINE_BATCH_SIZES:
        archive.add_endpoint(
            name=batch_signature(size),
            fn=lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((size, *LITERT_INPUTS[key][1:]), tf.float32)],
        )
    archive.write_out(folder, verbose=False)
    return [batch_signature(size) for size in LINE_BATCH_SIZES]


def export_litert(models_dir: Path) -> list[Path]:
    """Convert each shipped `.keras` model to `<name>.tflite` (float32, built-in ops only) and
    record it in the manifest's "litert" section with its sha256 and its source's sha256.

    Re-run after new Keras weights: `python -m training export --litert`."""
    import json
    import tempfile

    import keras
    import tensorflow as tf

    from ocrd.litert import SECTION
    from ocrd.recognition import file_sha256
    from training.manifest import MANIFEST_NAME, read_manifest

    models_dir = Path(models_dir)
    manifest = read_manifest(models_dir)
    converted: dict[str, dict] = {}
    written = []
    for key, entry in sorted(manifest.get("models", {}).items()):
        source = models_dir / entry["file"]
        if key not in LITERT_INPUTS or not source.is_file():
            continue
        model = keras.models.load_model(source, compile=False)
        with tempfile.TemporaryDirectory() as tmp:
            signatures = _saved_model(model, key, tmp)
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=signatures)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            data = converter.convert()
        target = models_dir / f"{Path(entry['file']).stem}.tflite"
        target.write_bytes(data)
        converted[key] = {
            "file": target.name,
            "sha256": file_sha256(target),
            "size_bytes": target.stat().st_size,
            "source_file": source.name,
            "source_sha256": file_sha256(source),
            "input_shape": list(LITERT_INPUTS[key]),
            "weights": "float32",
            "converter": f"tensorflow {tf.__version__}",
        }
        if signatures:
            converted[key]["batch_sizes"] = list(LINE_BATCH_SIZES)
        written.append(target)
    manifest[SECTION] = converted
    (models_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return written
