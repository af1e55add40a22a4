"""Reviewed fields as training data: what people accepted or corrected on the review page.

    python -m training corrections --db URL --out DIR     # export
    python -m training digit --extra DIR ...              # fine-tune on them
    python -m training sequence --extra DIR ...

DIR holds the crops as scanned (paper-white, cut from the stored page at the field's box):
    fields.csv   file,text,status,result_id,template,field      fields/<result id>.png
    digits.csv   file,label,result_id,index                     digits/<result id>-<k>.png
Accepted and corrected fields are labelled with the reviewed value; illegible ones are left
out. Digit crops are written only where the reviewed value has one digit per box the reader
cut (a correction that adds or drops a digit leaves the digit boxes unusable).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select

from ocrd.normalize import ink_from_paper, normalize_digit, normalize_line
from ocrd.review.images import ImageUnavailable, PageImages
from ocrd.store import Document, Result, Review, ReviewStatus, open_store

FIELDS_CSV, DIGITS_CSV = "fields.csv", "digits.csv"
DIGIT_REPEAT = 20  # each corrected digit is seen this often per epoch (a few hundred vs 54k MNIST)
LINE_REPEAT = 4  # each corrected field joins the real-line pool this often


def export_corrections(
    url: str, out: Path, *, max_pixels: int = 200_000_000, pdf_dpi: int = 300,
    log: Callable[[str], None] = print,
) -> dict[str, int]:  # fmt: skip
    """Write every accepted or corrected field (and its digits) under ``out``; counts."""
    store = open_store(url, upgrade=False)
    images = PageImages(max_pixels=max_pixels, pdf_dpi=pdf_dpi)
    (out / "fields").mkdir(parents=True, exist_ok=True)
    (out / "digits").mkdir(parents=True, exist_ok=True)
    counts = {"fields": 0, "digits": 0, "skipped": 0}
    labelled = (ReviewStatus.ACCEPTED.value, ReviewStatus.CORRECTED.value)
    query = (
        select(Result, Review.text, Review.status, Document.path)
        .join(Review, Review.result_id == Result.id)
        .join(Document, Document.id == Result.document_id)
        .where(Review.status.in_(labelled))
        .order_by(Document.id, Result.page, Result.id)
    )
    with (
        store.session(write=False) as session,
        open(out / FIELDS_CSV, "w", newline="") as fields_file,
        open(out / DIGITS_CSV, "w", newline="") as digits_file,
    ):
        fields = csv.writer(fields_file, lineterminator="\n")
        digits = csv.writer(digits_file, lineterminator="\n")
        fields.writerow(["file", "text", "status", "result_id", "template", "field"])
        digits.writerow(["file", "label", "result_id", "index"])
        for result, text, status, path in session.execute(query):
            try:
                page = images.page(path, result.page)
            except ImageUnavailable as exc:
                log(f"result {result.id}: {exc}; skipped")
                counts["skipped"] += 1
                continue
            name = f"fields/{result.id}.png"
            cv2.imwrite(str(out / name), _cut(page, result.x, result.y, result.w, result.h))
            fields.writerow(
                [name, text, status, result.id, result.template or "", result.field or ""]
            )
            counts["fields"] += 1
            boxes = [d.get("box") for d in result.digits or []]
            if len(boxes) != len(text) or not text.isdigit() or None in boxes:
                continue
            for index, (label, (x, y, w, h)) in enumerate(zip(text, boxes, strict=True)):
                digit_name = f"digits/{result.id}-{index}.png"
                cv2.imwrite(str(out / digit_name), _cut(page, x, y, w, h))
                digits.writerow([digit_name, label, result.id, index])
                counts["digits"] += 1
    store.dispose()
    log(f"{counts['fields']} fields and {counts['digits']} digits written to {out}"
        + (f" ({counts['skipped']} skipped)" if counts["skipped"] else ""))  # fmt: skip
    return counts


def _cut(page: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return page[max(0, y) : max(0, y) + h, max(0, x) : max(0, x) + w]


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: export with `python -m training corrections`")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _ink(folder: Path, name: str) -> np.ndarray | None:
    gray = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)
    return None if gray is None or gray.size == 0 else ink_from_paper(gray)


def digit_corrections(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The exported digits, normalised as the pipeline does: (N, 28, 28) float32, labels."""
    crops, labels = [], []
    for row in _rows(folder, DIGITS_CSV):
        ink = _ink(folder, row["file"])
        if ink is not None:
            crops.append(normalize_digit(ink))
            labels.append(int(row["label"]))
    if not crops:
        return np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64)
    return np.stack(crops), np.asarray(labels, np.int64)


def line_corrections(folder: Path) -> list[tuple[np.ndarray, str]]:
    """The exported fields whose value is all digits, as (normalised line, text)."""
    lines = []
    for row in _rows(folder, FIELDS_CSV):
        ink = _ink(folder, row["file"])
        if ink is not None and row["text"].isdigit():
            lines.append((normalize_line(ink), row["text"]))
    return lines


def with_digit_corrections(
    folder: Path,
    crops: tuple[np.ndarray, np.ndarray] | None,
    log: Callable[[str], None] = print,
) -> tuple[np.ndarray, np.ndarray]:
    """``crops`` (the digit trainer's pre-normalised extras, or None) plus the corrections,
    each repeated ``DIGIT_REPEAT`` times."""
    x, y = digit_corrections(folder)
    log(f"corrections: {len(y)} digits from {folder} (x{DIGIT_REPEAT} per epoch)")
    x, y = np.repeat(x, DIGIT_REPEAT, axis=0), np.repeat(y, DIGIT_REPEAT)
    if crops is None:
        return x, y
    return np.concatenate([crops[0], x]), np.concatenate([crops[1], y])


def extra_lines(folder: Path, log: Callable[[str], None] = print) -> list[tuple[np.ndarray, str]]:
    """The corrected fields for the sequence trainer's real-line pool, ``LINE_REPEAT`` times."""
    lines = line_corrections(folder)
    log(f"corrections: {len(lines)} fields from {folder} (x{LINE_REPEAT} in the real-line pool)")
    return lines * LINE_REPEAT
