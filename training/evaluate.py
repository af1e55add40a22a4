"""`python -m training evaluate`: the figures for the models in a models folder."""

from __future__ import annotations

from pathlib import Path


def evaluate_shipped(models_dir: Path, data_dir: Path | None, seed: int = 1) -> dict:
    """Digit and line metrics of the (sha256-verified) models in `models_dir`."""
    from ocrd.recognition import Recognizer
    from training.digits import evaluate_digits
    from training.sequence import evaluate_sequence

    recognizer = Recognizer(models_dir)
    results: dict = {"model": recognizer.model_name}
    results["digits"] = evaluate_digits(
        recognizer.digit_model, data_dir, recognizer.reject_threshold, seed
    )
    if recognizer.has_line_model:
        results["lines"] = evaluate_sequence(recognizer.line_model, data_dir, seed)
    return results
