"""Synchronous file -> DocumentReading pipeline: vision, then recognition, then fusion.

Used by `ocrd process` and `ocrd read`; the daemon composes `extract_fields` and `fuse` with
its own cross-file batcher, so both are free of global state.

Fusion policy (which reading to trust, per field). Both readers' string confidences are
products of per-character probabilities, so they compare directly:

- comb cells and single-digit images: the per-digit classifier, one digit per cell/image
  (the form did the segmentation). The sequence model's reading is a second opinion.
- written strings (free / underline / box / printed): whichever reading has the higher
  string confidence - the sequence model wins on touching or broken digits (vision then
  finds fewer or more blobs than digits, and the classifier is unsure), the classifier on
  cleanly separated digits, and always when every blob is confidently a digit but the
  sequence model counted a different number of digits (CTC merges repeats: "1111" -> "111").
  With no line model, the classifier alone.
- both counted the same digits but read some differently: they are aligned one-to-one and
  each position takes the surer reader's digit (the other's is kept as runner-up). On
  1,728 handwritten fields of generated forms (MNIST-train hold-out digits, never t10k)
  this fixed 20 fields (19 of them combs) and broke 6. In a written string a blob the
  classifier rejected is aligned too when only counting it matches the sequence model's
  count (a faint or broken digit, not a separator): 5 more fixed, none broken.
- both agree: confidence = 1 - (1 - a)(1 - b) (two independent readers rarely agree on a
  wrong answer). They disagree: the chosen text's confidence is multiplied by
  DISAGREEMENT_PENALTY.
- not digits: when every per-digit crop is rejected (`is_digit` False) the field is dropped
  (returns None): printed words and marks that slipped past vision's filters. In a written
  string a single rejected blob is a separator or stray mark and is left out of the per-digit
  reading; in a comb every cell counts (a rejected cell keeps its best label, low confidence).
Per-digit details (label, confidence, runner-up, box) are kept in `FieldReading.digits`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ocrd.calibration import shipped_calibration
from ocrd.line_votes import combined, line_inputs
from ocrd.normalize import LINE_MARGIN
from ocrd.types import Box, DigitReading, DocumentReading, Field, FieldReading, Page
from ocrd.vision import find_fields, iter_pages, sniff_media_type
from ocrd.vision.loading import Admit, to_file_coordinates

if TYPE_CHECKING:
    from ocrd.recognition import DigitPrediction, LinePrediction, Recognizer
    from ocrd.templates import TemplateSet

DEFAULT_MAX_PIXELS = 200_000_000
DIGIT_LAYOUTS = frozenset({"comb", "single"})
DISAGREEMENT_PENALTY = 0.7
SURE_DIGIT = 0.8


def extract_fields(
    path: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pdf_dpi: int = 300,
    max_pages: int = 0,
    admit: Admit | None = None,
    input_kind: str = "auto",
) -> Iterator[tuple[Page, list[Field]]]:
    """Each page of the file with its fields (boxes in the file's pixels), one page at a time.
    `max_pages` and `admit` (a memory budget): see `ocrd.vision.loading.iter_pages`;
    `input_kind`: auto | page | field | digit (`ocrd.vision.kinds`). Raises BadInputError."""
    pages = iter_pages(
        Path(path), max_pixels=max_pixels, pdf_dpi=pdf_dpi, max_pages=max_pages, admit=admit
    )
    for page in pages:
        yield page, to_file_coordinates(find_fields(page, input_kind), page)
        del page  # not alive beside the next page while it is decoded


def read_fields(
    fields: Sequence[Field], recognizer: Recognizer, *, calibrated: bool = True
) -> list[FieldReading | None]:
    """Read a batch of fields with one sequence call and one classifier call; fuse each
    (`calibrated=False`: raw fused confidences, for fitting the calibration)."""
    if not fields:
        return []
    has_lines = getattr(recognizer, "has_line_model", True)  # digits-only model sets work too
    with_lines = [i for i, f in enumerate(fields) if f.line_crop is not None and has_lines]
    lines: list[LinePrediction | None] = [None] * len(fields)
    for index, prediction in zip(
        with_lines, _read_lines(fields, with_lines, recognizer), strict=True
    ):
        lines[index] = prediction
    to_classify = [digit_crops_to_read(f, has_lines) for f in fields]
    crops = [crop for field_crops in to_classify for crop in field_crops]
    digit_predictions = recognizer.read_digits(np.stack(crops).astype(np.float32)) if crops else []
    readings, start = [], 0
    for field, line, field_crops in zip(fields, lines, to_classify, strict=True):
        digits = list(digit_predictions[start : start + len(field_crops)])
        start += len(field_crops)
        combine = fuse if calibrated else _fused
        readings.append(combine(field, line, digits, recognizer.model_name))
    return readings


def digit_crops_to_read(field: Field, has_lines: bool) -> list[np.ndarray]:
    """The crops the classifier must read for `fuse`: none for a whole-image field when a
    line model reads it (`fuse` takes the line model's reading alone there)."""
    return [] if field.layout == "field" and has_lines else field.digit_crops


def _read_lines(
    fields: Sequence[Field], indices: list[int], recognizer: Recognizer
) -> list[LinePrediction]:
    """One line-model call for the fields' line inputs (`ocrd.line_votes`: a whole-field
    image is read with its variants, and they vote)."""
    inputs = [line_inputs(fields[index]) for index in indices]
    flat = [line for lines in inputs for line in lines]
    predictions = iter(recognizer.read_lines(flat) if flat else [])
    return [combined([next(predictions) for _ in lines], lines) for lines in inputs]


def read_document(
    path: Path,
    recognizer: Recognizer | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pdf_dpi: int = 300,
    max_pages: int = 0,
    input_kind: str = "auto",
    templates: TemplateSet | None = None,
) -> DocumentReading:
    """Everything read from one file (models loaded lazily). Raises BadInputError."""
    path = Path(path)
    media_type = sniff_media_type(path)
    document = DocumentReading(media_type=media_type, pages=0)
    pages = extract_fields(
        path, max_pixels=max_pixels, pdf_dpi=pdf_dpi, max_pages=max_pages, input_kind=input_kind
    )
    for page, fields in pages:
        document.pages = page.number
        document.notes.extend(page.notes)
        matched = None
        if templates:
            from ocrd.templates import match_page, name_pages

            matched, fields = match_page(page, fields, templates)
        if fields and recognizer is None:  # bad files fail before the models load
            from ocrd.recognition import load_recognizer

            recognizer = load_recognizer()
        readings = [r for r in read_fields(fields, recognizer) if r is not None] if fields else []
        if matched is not None:
            readings = name_pages(readings, {page.number: matched})
        document.fields.extend(readings)
    return with_empty_note(document)


NO_FIELDS_NOTE = "no fields found"


def with_empty_note(document: DocumentReading) -> DocumentReading:
    """A document read without a single field gets the note (counted by `ocrd status`)."""
    if not document.fields and NO_FIELDS_NOTE not in document.notes:
        document.notes.append(NO_FIELDS_NOTE)
    return document


def fuse(
    field: Field,
    line: LinePrediction | None,
    digits: list[DigitPrediction],
    model_name: str,
    accept_confidence: float | None = None,
) -> FieldReading | None:
    """One text + confidence for a field from the two readers (policy in the module doc).

    The confidence is then calibrated (`ocrd.calibration`: the probability that the whole
    field is right) and a field below `accept_confidence` (default: the calibration's
    threshold for the field's layout family) is marked needs_review."""
    reading = _fused(field, line, digits, model_name)
    if reading is None:
        return None
    calibration = shipped_calibration()
    reading.confidence = calibration.probability(reading.confidence, field.layout)
    accept = accept_confidence
    if accept is None:
        accept = calibration.accept_for(field.layout)
    if reading.confidence < accept:
        reading.needs_review = True
        reading.review_reason = f"confidence {reading.confidence:.3f} < {accept:g}"
    return reading


def _fused(
    field: Field,
    line: LinePrediction | None,
    digits: list[DigitPrediction],
    model_name: str,
) -> FieldReading | None:
    if field.layout == "field":
        return _field_image_reading(field, line, model_name)
    if digits and not any(d.is_digit for d in digits):
        return None
    every_blob = list(zip(digits, field.digit_boxes, strict=False))
    pairs, left_out = every_blob, []
    if field.layout not in DIGIT_LAYOUTS:
        # In a written string a rejected blob is a separator or a stray mark, not a digit.
        pairs = [(d, box) for d, box in every_blob if d.is_digit]
        left_out = [d for d, _ in every_blob if not d.is_digit]
    digit_text = "".join(str(int(d.label)) for d, _ in pairs)
    digit_conf = _digit_string_confidence(pairs, left_out)
    line_text = line.text if line is not None else ""
    line_conf = float(line.confidence) if line is not None else 0.0
    if line is not None and line_text and digit_text != line_text:
        # Same count: align one-to-one. A rejected blob the sequence model reads as a digit
        # (its count matches only with that blob) was a faint or broken digit after all.
        for aligned in (pairs, every_blob):
            if len(aligned) == len(line_text):
                return _aligned_reading(field, aligned, line, model_name)
    digit_primary = (
        field.layout in DIGIT_LAYOUTS
        or not line_text
        or (bool(pairs) and digit_conf >= line_conf)
        or _counted_digits_disagree(pairs, len(digits), line_text)
    )
    if digit_primary:
        text, confidence, other_text, other_conf = digit_text, digit_conf, line_text, line_conf
    else:
        text, confidence, other_text, other_conf = line_text, line_conf, digit_text, digit_conf
    if not text:
        return None
    if other_text == text:
        confidence = 1.0 - (1.0 - confidence) * (1.0 - other_conf)
    elif other_text or (line is not None and digit_primary):
        # A line model that ran and saw no digit at all disagrees too: nothing backs the
        # classifier's reading then.
        confidence *= DISAGREEMENT_PENALTY
    details = _digit_details(field, text, pairs if digit_primary else None, line)
    return FieldReading(
        page=field.page,
        box=field.box,
        text=text,
        confidence=float(np.clip(confidence, 0.0, 1.0)),
        kind=field.kind,
        model=model_name,
        digits=details,
    )


def _field_image_reading(
    field: Field, line: LinePrediction | None, model_name: str
) -> FieldReading | None:
    """A whole image holding one number: the sequence model reads it (it was trained on
    such images). Aligning the classifier's blobs with its digits read fewer of them."""
    if line is None or not line.text:
        return None
    return FieldReading(
        page=field.page,
        box=field.box,
        text=line.text,
        confidence=float(np.clip(line.confidence, 0.0, 1.0)),
        kind=field.kind,
        model=model_name,
        digits=_digit_details(field, line.text, None, line),
    )


def _aligned_reading(
    field: Field,
    pairs: list[tuple[DigitPrediction, Box]],
    line: LinePrediction,
    model_name: str,
) -> FieldReading:
    """Both readers counted the same digits: each position takes the surer reader's digit.

    The classifier misreads a cell whose neighbour spills into it, the sequence model a
    digit it saw slanted or broken; rarely both at the same place. The other reader's digit
    is kept as the runner-up, and any disagreement costs DISAGREEMENT_PENALTY."""
    details, disagreed = [], False
    for (digit, box), char, line_conf in zip(pairs, line.text, line.confidences, strict=True):
        classifier = (str(int(digit.label)), float(digit.confidence))
        sequence = (char, float(line_conf))
        if classifier[0] == char:
            chosen = classifier
            other = (str(int(digit.runner_up)), float(digit.runner_up_confidence))
        else:
            chosen, other = sorted((classifier, sequence), key=lambda r: r[1], reverse=True)
            disagreed = True
        details.append(DigitReading(chosen[0], chosen[1], box, other[0], other[1]))
    confidence = float(np.prod([d.confidence for d in details]))
    if disagreed:
        confidence *= DISAGREEMENT_PENALTY
    return FieldReading(
        page=field.page,
        box=field.box,
        text="".join(d.digit for d in details),
        confidence=float(np.clip(confidence, 0.0, 1.0)),
        kind=field.kind,
        model=model_name,
        digits=details,
    )


def _digit_string_confidence(
    pairs: list[tuple[DigitPrediction, Box]], left_out: list[DigitPrediction]
) -> float:
    """The classifier's probability that its string is right: each kept digit is what it
    read, and each blob it left out (a separator, a stray mark) is indeed no digit - a blob
    rejected at 0.4 may be a broken digit, which a product over the kept digits alone hides."""
    if not pairs:
        return 0.0
    kept = np.prod([digit.confidence for digit, _ in pairs])
    return float(kept * np.prod([1.0 - digit.confidence for digit in left_out]))


def _counted_digits_disagree(pairs: list, blobs: int, line_text: str) -> bool:
    """Vision separated every digit cleanly (each blob confidently a digit) but the sequence
    model read a different number of them: CTC tends to merge repeats ("1111" -> "111")."""
    return (
        bool(pairs)
        and len(pairs) == blobs
        and len(pairs) != len(line_text)
        and min(float(d.confidence) for d, _ in pairs) >= SURE_DIGIT
    )


def _digit_details(
    field: Field,
    text: str,
    digits: list[tuple[DigitPrediction, Box]] | None,
    line: LinePrediction | None,
) -> list[DigitReading]:
    """Per-character label, confidence, runner-up and box."""
    if digits is not None:
        return [
            DigitReading(
                digit=str(int(d.label)),
                confidence=float(d.confidence),
                box=box,
                runner_up=str(int(d.runner_up)),
                runner_up_confidence=float(d.runner_up_confidence),
            )
            for d, box in digits
        ]
    assert line is not None
    confidences = list(line.confidences) + [line.confidence] * len(text)
    boxes = (
        field.digit_boxes
        if len(field.digit_boxes) == len(text)
        else _boxes_from_positions(field, list(line.positions), len(text))
    )
    return [
        DigitReading(digit=char, confidence=float(conf), box=box)
        for char, conf, box in zip(text, confidences, boxes, strict=False)
    ]


def _boxes_from_positions(field: Field, positions: list[float], count: int) -> list[Box]:
    """Map the sequence model's column positions (line-crop pixels) back to page boxes."""
    crop_width = field.line_crop.shape[1] if field.line_crop is not None else 0
    inner = max(1.0, crop_width - 2 * LINE_MARGIN)
    width = max(1, field.box.w // max(1, count))
    if len(positions) < count:
        positions = [LINE_MARGIN + inner * (i + 0.5) / count for i in range(count)]
    boxes = []
    for position in positions[:count]:
        centre = field.box.x + (position - LINE_MARGIN) / inner * field.box.w
        x = int(round(min(max(centre - width / 2, field.box.x), field.box.x + field.box.w - width)))
        boxes.append(Box(x, field.box.y, width, field.box.h))
    return boxes
