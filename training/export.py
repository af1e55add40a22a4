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
