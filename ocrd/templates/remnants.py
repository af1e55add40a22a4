"""Pieces of a field's frame read as digits: the template knows where the frame is.

Vision erases a comb's dividers and a box's sides before reading, but on a blurred, bilevel
or warped scan a piece can survive, and a thin upright sliver reads as "1" (an empty comb of
8 cells as "1111111"). The template has the frame's exact place: a digit narrower than
REMNANT_WIDTH_IN whose centre, mapped onto the template, lies within RULE_REACH_IN of a side
or divider is taken out of the reading. A written 1 sits inside its cell, not on the rule.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ocrd.templates.align import PageMatch
from ocrd.templates.model import TemplateField
from ocrd.types import FieldReading

REMNANT_WIDTH_IN = 0.04  # a frame piece is a line's width; a written 1 is mostly wider
RULE_REACH_IN = 0.03  # ... and it is centred this close to the rule


def without_frame_remnants(
    reading: FieldReading, tfield: TemplateField, match: PageMatch, dpi: float
) -> FieldReading | None:
    """`reading` with the digits that are its frame's remnants taken out (None: nothing is
    left); as it was when the field has no upright rules or its digits do not spell its text."""
    rules = rule_columns(tfield)
    digits = reading.digits
    if not rules.size or not digits or "".join(d.digit for d in digits) != reading.text:
        return reading
    boxes = np.float64([[d.box.x, d.box.y, d.box.w, d.box.h] for d in digits])
    middle = boxes[:, 1] + boxes[:, 3] / 2
    left = match.to_template(np.c_[boxes[:, 0], middle])[:, 0]
    right = match.to_template(np.c_[boxes[:, 0] + boxes[:, 2], middle])[:, 0]
    centre = (left + right) / 2
    near = np.abs(centre[:, None] - rules[None, :]).min(axis=1) <= RULE_REACH_IN * dpi
    remnant = near & (right - left <= REMNANT_WIDTH_IN * dpi)
    if not remnant.any():
        return reading
    kept = [d for d, gone in zip(digits, remnant, strict=True) if not gone]
    if not kept:
        return None
    return dataclasses.replace(reading, text="".join(d.digit for d in kept), digits=kept)


def rule_columns(tfield: TemplateField) -> np.ndarray:
    """x of the field's upright rules in template pixels: a box's sides, a comb's dividers."""
    b = tfield.box
    if tfield.layout == "comb" and tfield.cells:
        return b.x + b.w * np.arange(tfield.cells + 1) / tfield.cells
    if tfield.layout in ("comb", "box"):
        return np.float64([b.x, b.x + b.w])
    return np.zeros(0)
