"""Naming a matched page's readings after the template's fields and checking their rules.

Each reading's box centre is mapped onto the template; the field whose box holds it (the
smallest, when boxes nest) names it. Several readings in one field (a free number vision
split in two) are joined left to right, after any pieces of the field's frame read as digits
are taken out (`remnants.py`). A field nothing was read from becomes an empty
result at the field's place on the page; readings outside every field keep the template's
name without a field. Rules are checked on every named field; a broken one (or an empty
required field) marks the result needs_review with the reasons.
"""

from __future__ import annotations

import numpy as np

from ocrd.templates.align import PageMatch
from ocrd.templates.evidence import without_unwritten
from ocrd.templates.model import Template, TemplateField
from ocrd.templates.remnants import without_frame_remnants
from ocrd.templates.rules import broken_rules
from ocrd.types import Box, FieldReading

FIELD_MARGIN_IN = 0.08  # a reading whose centre is this close outside a field still belongs


def apply_match(
    match: PageMatch, readings: list[FieldReading], page: int, page_shape: tuple[int, ...]
) -> list[FieldReading]:
    """The page's readings named, one per template field in the template's order (empty
    ones included), then any readings outside every field."""
    template = match.template
    by_field: dict[int, list[tuple[float, FieldReading]]] = {}
    outside = []
    centres = np.float64([[r.box.x + r.box.w / 2, r.box.y + r.box.h / 2] for r in readings])
    mapped = match.to_template(centres) if readings else np.zeros((0, 2))
    for reading, (cx, cy) in zip(readings, mapped, strict=True):
        index = field_at(template, cx, cy)
        if index is None:
            outside.append(_named(reading, template.name, None))
        else:
            by_field.setdefault(index, []).append((cx, reading))
    named = []
    dpi = template_dpi(template)
    for index, tfield in enumerate(template.fields):
        members = [r for _, r in sorted(by_field.get(index, []), key=lambda item: item[0])]
        writing = match.writing[index] if match.writing is not None else None
        members = [
            kept for r in members
            if (kept := without_frame_remnants(r, tfield, match, dpi)) is not None
            and (kept := without_unwritten(kept, writing, match)) is not None
        ]  # fmt: skip
        reading = _joined(members) if members else _empty(match, tfield, page, page_shape)
        named.append(_checked(_named(reading, template.name, tfield.name), tfield))
    return named + outside


def field_at(template: Template, x: float, y: float) -> int | None:
    """The index of the template field holding (x, y) in template pixels (the smallest when
    fields nest), or None."""
    margin = FIELD_MARGIN_IN * template_dpi(template)
    best, best_area = None, None
    for index, f in enumerate(template.fields):
        b = f.box
        if b.x - margin <= x <= b.x + b.w + margin and b.y - margin <= y <= b.y + b.h + margin:
            area = b.w * b.h
            if best_area is None or area < best_area:
                best, best_area = index, area
    return best


def template_dpi(template: Template) -> float:
    return float(template.dpi or template.width / 8.27)


def _named(reading: FieldReading, template: str, field: str | None) -> FieldReading:
    reading.template, reading.field_name = template, field
    return reading


def _joined(members: list[FieldReading]) -> FieldReading:
    if len(members) == 1:
        return members[0]
    first = members[0]
    x0 = min(r.box.x for r in members)
    y0 = min(r.box.y for r in members)
    x1 = max(r.box.x + r.box.w for r in members)
    y1 = max(r.box.y + r.box.h for r in members)
    return FieldReading(
        page=first.page,
        box=Box(x0, y0, x1 - x0, y1 - y0),
        text="".join(r.text for r in members),
        confidence=float(np.prod([r.confidence for r in members])),
        kind=first.kind,
        model=first.model,
        digits=[d for r in members for d in r.digits],
        needs_review=any(r.needs_review for r in members),
        review_reason="; ".join(r.review_reason for r in members if r.review_reason) or None,
    )


def _empty(
    match: PageMatch, tfield: TemplateField, page: int, page_shape: tuple[int, ...]
) -> FieldReading:
    """Nothing was read here: an empty result where the field lies on this page."""
    b = tfield.box
    corners = np.float64([[b.x, b.y], [b.x + b.w, b.y], [b.x, b.y + b.h], [b.x + b.w, b.y + b.h]])
    pts = match.to_page(corners)
    height, width = page_shape[:2]
    x0, y0 = np.clip(pts.min(axis=0), 0, [width - 1, height - 1])
    x1, y1 = np.clip(pts.max(axis=0), 0, [width, height])
    box = Box(int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0)))
    kind = tfield.kind if tfield.kind in ("handwritten", "printed") else "unknown"
    return FieldReading(page=page, box=box, text="", confidence=0.0, kind=kind, model="")


def _checked(reading: FieldReading, tfield: TemplateField) -> FieldReading:
    reasons = broken_rules(reading.text, tfield.rules)
    if reasons:
        reading.needs_review = True
        reading.review_reason = "; ".join(filter(None, [reading.review_reason, *reasons]))
    return reading
