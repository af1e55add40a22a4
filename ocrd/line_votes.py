"""Reading a whole-field image several times, slightly changed, and letting the readings vote.

A field image (a cheque amount, a field exported by another system) is one number, and
its writer's slant, stroke width and spacing are whatever they were. The line model reads
the image as given and as a few plain variants of it - narrower and wider, slanted either
way, a thicker pen - and the text with the largest summed confidence wins. Variants that
read something else lower the confidence: agreement is the evidence that the reading
does not hinge on one accident of the writing.

`ocrd.normalize.normalize_line` output goes in; every variant is normalised the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import cv2
import numpy as np

from ocrd.normalize import LINE_HEIGHT, normalize_line, shear_ink
from ocrd.recognition import LinePrediction
from ocrd.types import Field

STRETCHES = (0.8, 1.25)
SHEARS = (-0.2, 0.2)
VARIANT_COUNT = 1 + len(STRETCHES) + len(SHEARS) + 1


def line_variants(line: np.ndarray) -> list[np.ndarray]:
    """The (32, W) line itself first, then its stretched, sheared and thickened variants."""
    image = (np.clip(line, 0, 1) * 255).astype(np.uint8)
    variants = [line]
    for stretch in STRETCHES:
        width = max(8, round(image.shape[1] * stretch))
        variants.append(normalize_line(cv2.resize(image, (width, LINE_HEIGHT))))
    for shear in SHEARS:
        variants.append(normalize_line(shear_ink(image, shear)))
    variants.append(normalize_line(cv2.dilate(image, np.ones((2, 2), np.uint8))))
    return variants


def line_inputs(field: Field) -> list[np.ndarray]:
    """What the line model reads for a field: a whole-field image with its variants, any
    other field's line crop alone (a form holds many fields; they are not worth 6x)."""
    if field.line_crop is None:
        return []
    return line_variants(field.line_crop) if field.layout == "field" else [field.line_crop]


def combined(predictions: Sequence[LinePrediction], inputs: Sequence[np.ndarray]) -> LinePrediction:
    """The one reading of a field from the readings of its `line_inputs`."""
    if len(predictions) == 1:
        return predictions[0]
    return vote(predictions, [line.shape[1] for line in inputs])


def vote(predictions: Sequence[LinePrediction], widths: Sequence[int]) -> LinePrediction:
    """The text with the largest summed confidence over the variants' readings (`widths`:
    each variant's line width); its confidence is that sum over all variants, disagreeing
    ones counting 0. Digit confidences and positions come from the first (unchanged)
    reading when it agrees, else from the most confident agreeing variant, its positions
    scaled to the first line's width."""
    scores: dict[str, float] = defaultdict(float)
    for prediction in predictions:
        scores[prediction.text] += prediction.confidence
    text = max(scores, key=lambda t: (scores[t], t == predictions[0].text))
    index = 0
    if predictions[0].text != text:
        agreeing = [i for i, p in enumerate(predictions) if p.text == text]
        index = max(agreeing, key=lambda i: predictions[i].confidence)
    source = predictions[index]
    scale = widths[0] / max(1, widths[index])
    positions = [position * scale for position in source.positions]
    confidence = scores[text] / len(predictions)
    return LinePrediction(text, list(source.confidences), positions, confidence)
