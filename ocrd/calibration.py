"""Field confidence as the probability that the whole field is right.

The fused reading's raw confidence (a product of per-digit probabilities, adjusted when the
readers agree or disagree) ranks fields well but is not a probability: fields at 0.99 were
wrong 3-7% of the time. Per layout family, a logistic (Platt) map
``p = sigmoid(a * logit(raw) + b)`` is fitted on held-out material by
`python -m training calibrate` (forms written with MNIST-train hold-out digits, and the
ORAND-CAR-A validation tenth as field images; never t10k or the ORAND hold-out) and shipped
as ``ocrd/models/calibration.json`` beside the weights it was fitted for, together with the
default accept threshold: fields below it are marked ``needs_review``. One threshold for all
families let cheque-like field images (whose top scores are less often right than Platt's two
parameters can say) through at 1.3% errors while form fields stayed below 0.3%, so a family
whose own fields need a higher threshold gets one (``accept``). A user's
``accept_confidence`` setting overrides them all.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

CALIBRATION_FILE = "calibration.json"
DEFAULT_ACCEPT = 0.9
FAMILIES = {
    "comb": "cells",
    "single": "cells",
    "field": "field",
    "printed": "printed",
}  # every other layout (free, underline, box) is "written"


def family(layout: str) -> str:
    return FAMILIES.get(layout, "written")


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class Calibration:
    """Platt parameters per layout family; a family without them keeps the raw value."""

    params: dict[str, tuple[float, float]] = field(default_factory=dict)
    accept_confidence: float = DEFAULT_ACCEPT  # for a family without its own threshold
    models: str = ""  # the model versions it was fitted for
    accept: dict[str, float] = field(default_factory=dict)  # family -> default threshold

    def accept_for(self, layout: str) -> float:
        """The default threshold for a field of this layout."""
        return self.accept.get(family(layout), self.accept_confidence)

    def probability(self, raw: float, layout: str) -> float:
        a_b = self.params.get(family(layout))
        if a_b is None:
            return float(min(max(raw, 0.0), 1.0))
        a, b = a_b
        z = a * _logit(raw) + b
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_json(self) -> str:
        return json.dumps(
            {"models": self.models, "accept_confidence": self.accept_confidence,
             "accept": dict(sorted(self.accept.items())),
             "params": {k: list(v) for k, v in sorted(self.params.items())}},
            indent=1,
        )  # fmt: skip


def read_calibration(path: Path) -> Calibration:
    """The calibration in `path`, or the identity (raw confidences) when there is none."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Calibration()
    params = {str(k): (float(v[0]), float(v[1])) for k, v in data.get("params", {}).items()}
    accept = {str(k): float(v) for k, v in data.get("accept", {}).items()}
    return Calibration(params, float(data.get("accept_confidence", DEFAULT_ACCEPT)),
                       str(data.get("models", "")), accept)  # fmt: skip


@lru_cache(maxsize=4)
def _cached(models_dir: str) -> Calibration:
    return read_calibration(Path(models_dir) / CALIBRATION_FILE)


def shipped_calibration() -> Calibration:
    """The calibration beside the models in use ($OCRD_MODELS_DIR or the shipped ones)."""
    default = Path(__file__).resolve().parent / "models"
    return _cached(str(os.environ.get("OCRD_MODELS_DIR") or default))


def fit_platt(raw: list[float], right: list[bool]) -> tuple[float, float]:
    """The (a, b) of least log-loss on a grid (a in 0.05..4, b in -6..6), plus a light pull
    towards the identity: robust where raw confidences saturate at 1 and Newton's method
    runs away on nearly separable data."""
    import numpy as np

    x = np.array([_logit(r) for r in raw])[None, None, :]
    y = np.asarray(right, float)[None, None, :]
    a = np.linspace(0.05, 4.0, 80)[:, None, None]
    b = np.linspace(-6.0, 6.0, 121)[None, :, None]
    z = a * x + b
    # log(1 + e^-z) for the right ones, log(1 + e^z) for the wrong ones, computed stably
    loss = (np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)).sum(axis=2)
    loss += 0.5 * ((a[..., 0] - 1.0) ** 2 + 0.1 * b[..., 0] ** 2)
    i, j = np.unravel_index(int(loss.argmin()), loss.shape)
    return round(float(a[i, 0, 0]), 4), round(float(b[0, j, 0]), 4)
