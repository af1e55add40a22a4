"""The `ocrd template check` picture: the scan warped onto the template, every field's box,
name, reading and rule verdict drawn on it (green kept, red broken, grey empty), and a thin
grey box round the printed label each field was tied to."""

from __future__ import annotations

import cv2
import numpy as np

from ocrd.templates.align import PageMatch
from ocrd.types import FieldReading

GREEN, RED, GREY = (40, 150, 40), (30, 30, 210), (150, 150, 150)  # BGR


def verdict(reading: FieldReading) -> str:
    if reading.needs_review:
        return reading.review_reason or "needs review"
    return "empty" if not reading.text else "ok"


def draw_overlay(image: np.ndarray, match: PageMatch, readings: list[FieldReading]) -> np.ndarray:
    """BGR image of the template's size: the aligned page with the named readings."""
    template = match.template
    aligned = cv2.warpPerspective(
        image, match.homography, (template.width, template.height), borderValue=255
    )
    canvas = cv2.cvtColor(aligned, cv2.COLOR_GRAY2BGR)
    by_name = {r.field_name: r for r in readings if r.field_name}
    scale = max(0.4, template.width / 2000)
    thickness = max(1, int(round(2 * scale)))
    for tfield in template.fields:
        reading = by_name.get(tfield.name)
        text = reading.text if reading is not None else ""
        colour = GREY if not text else GREEN
        if reading is not None and reading.needs_review:
            colour = RED
        b = tfield.box
        cv2.rectangle(canvas, (b.x, b.y), (b.x + b.w, b.y + b.h), colour, thickness)
        if tfield.label is not None:  # the printed label the name should come from
            a = tfield.label
            cv2.rectangle(canvas, (a.x, a.y), (a.x + a.w, a.y + a.h), GREY, 1)
            cv2.line(canvas, (a.x + a.w, a.y + a.h // 2), (b.x, b.y + b.h // 2), GREY, 1)
        label = f"{tfield.name} = {text or '-'}"
        if reading is not None and verdict(reading) not in ("ok", "empty"):
            label += f"  ({verdict(reading)})"
        baseline = max(12, b.y - int(8 * scale))
        cv2.putText(canvas, label, (b.x, baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale,
                    colour, thickness, cv2.LINE_AA)  # fmt: skip
    return canvas
