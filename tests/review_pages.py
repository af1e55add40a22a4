"""Test data for the review page tests: a real page image with printed numbers, stored as a
done document whose fields (some marked for review) are written through the store."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ocrd.store import documents
from ocrd.types import Box, DigitReading, DocumentReading, FieldReading

# (text written on the page, what the "reader" says, confidence, needs review, field name)
FIELDS = [
    ("4711", "4711", 0.55, True, "amount"),
    ("2026", "2028", 0.41, True, "year"),
    ("1234", "1294", 0.38, True, "account"),
    ("77", "77", 0.99, False, "count"),
    ("305", "305", 0.62, True, "code"),
]
FIELD_BOXES = [Box(60 + 0 * 0, 80 + 140 * i, 330, 90) for i in range(len(FIELDS))]


def glyph_boxes(box: Box, text: str) -> list[Box]:
    """Where ``write_page`` put each character of ``text`` in ``box`` (page pixels)."""
    boxes, x = [], box.x + 20
    for char in text:
        (width, height), _ = cv2.getTextSize(char, cv2.FONT_HERSHEY_SIMPLEX, 2.4, 5)
        boxes.append(Box(x - 2, box.y + 70 - height - 4, width + 4, height + 10))
        x += width
    return boxes


def write_page(path: Path) -> Path:
    """A 900 x 800 scan-like page with each field's written digits in its box."""
    page = np.full((800, 900), 255, np.uint8)
    for (written, *_), box in zip(FIELDS, FIELD_BOXES, strict=True):
        cv2.rectangle(page, (box.x, box.y), (box.x + box.w, box.y + box.h), 0, 2)
        cv2.putText(page, written, (box.x + 20, box.y + 70), cv2.FONT_HERSHEY_SIMPLEX, 2.4, 0, 5)
    cv2.putText(page, path.name, (560, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)  # unique content
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), page)
    return path


def reading(template: str = "invoice") -> DocumentReading:
    fields = []
    for (_written, text, confidence, review, name), box in zip(FIELDS, FIELD_BOXES, strict=True):
        digits = [
            DigitReading(d, confidence, glyph, "8", 0.2)
            for d, glyph in zip(text, glyph_boxes(box, text), strict=True)
        ]
        fields.append(
            FieldReading(
                page=1, box=box, text=text, confidence=confidence, kind="printed",
                model="test@1", digits=digits, needs_review=review,
                review_reason="low confidence" if review else None, template=template,
                field_name=name,
            )
        )  # fmt: skip
    return DocumentReading(media_type="image/png", pages=1, fields=fields)


def store_page(store, folder: Path, name: str = "form-1.png", template: str = "invoice") -> int:  # noqa: ANN001
    """Write the page under ``folder`` and record it as read; returns the document id."""
    path = write_page(folder / name)
    with store.session() as session:
        document = documents.register(session, path, documents.digest_file(path))
        documents.start(session, document.id)
        documents.finish(session, document.id, reading(template))
        return document.id


def store_failed(store, folder: Path, name: str = "broken.png") -> int:  # noqa: ANN001
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an image")
    with store.session() as session:
        document = documents.register(session, path, documents.digest_file(path))
        documents.start(session, document.id)
        documents.fail(session, document.id, "not an image (looks like text)")
        return document.id
