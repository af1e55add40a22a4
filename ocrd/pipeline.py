"""Synchronous file -> DocumentReading pipeline: vision, then recognition.

Used by `ocrd process` and `ocrd read`; the daemon composes the same stages with
batching across files. PLACEHOLDER until vision and recognition land: counts pages
and returns no fields, but raises BadInputError on unreadable files like the real one.
"""

from __future__ import annotations

from pathlib import Path

from ocrd.types import BadInputError, DocumentReading


def read_document(path: Path) -> DocumentReading:
    from PIL import Image, UnidentifiedImageError

    if path.stat().st_size == 0:
        raise BadInputError("empty file")
    try:
        with Image.open(path) as img:
            pages = getattr(img, "n_frames", 1)
            img.load()
            media = Image.MIME.get(img.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise BadInputError(f"not a readable image: {exc}") from exc
    return DocumentReading(media_type=media, pages=pages, fields=[])
