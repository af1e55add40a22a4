"""Field crops and page images for the review page, cut on demand from the stored file.

A document's file sits in ``processed/`` (``documents.path``); its pages are decoded with the
pipeline's own loader, so boxes (page pixels before deskew) land where the reader saw them.
Decoded pages and encoded crops are kept in small LRU caches: the queue is ordered oldest
first, so neighbouring items mostly come from one page, which is decoded once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ocrd.types import BadInputError, Box
from ocrd.vision import iter_pages

PAGE_CACHE = 6  # decoded pages (an A4 page at 300 dpi is ~9 MB)
CROP_CACHE = 4096  # encoded crops (a few KB each)
PAGE_JPEG_QUALITY = 85


class ImageUnavailable(Exception):
    """The page cannot be shown (file moved away, unreadable, no such page): one line."""


class _LRU:
    """A small LRU cache whose values are made outside its lock; a second request for a value
    being made waits for that one instead of making it again."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[object, object] = OrderedDict()
        self._making: dict[object, Future] = {}
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items or key in self._making

    def get_or_make(self, key: object, make: Callable[[], object]) -> object:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            making = self._making.get(key)
            if making is None:
                making = self._making[key] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return making.result()
        try:
            value = make()
        except BaseException as exc:
            with self._lock:
                del self._making[key]
            making.set_exception(exc)
            raise
        with self._lock:
            del self._making[key]
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        making.set_result(value)
        return value


class PageImages:
    """Decoded pages and rendered crops, shared by the requests of one review server."""

    def __init__(self, *, max_pixels: int, pdf_dpi: int) -> None:
        self.max_pixels = max_pixels
        self.pdf_dpi = pdf_dpi
        self._pages = _LRU(PAGE_CACHE)
        self._crops = _LRU(CROP_CACHE)
        self._warmer = ThreadPoolExecutor(1, thread_name_prefix="review-warm")

    def page(self, path: str, number: int) -> np.ndarray:
        file = Path(path)
        key = self._page_key(path, number)
        return self._pages.get_or_make(key, lambda: self._decode(file, number))  # type: ignore[return-value]

    @staticmethod
    def _page_key(path: str, number: int) -> tuple[str, int, int]:
        try:
            stamp = Path(path).stat().st_mtime_ns  # a replaced file is decoded afresh
        except OSError:
            raise ImageUnavailable("the document's file is no longer where ocrd put it") from None
        return (path, stamp, number)

    def warm(self, pages: Iterable[tuple[str, int]]) -> None:
        """Decode these pages in the background (the queue's next items), one at a time, so
        that their crops are cut from memory when the browser asks for them."""
        for path, number in dict.fromkeys(pages):
            self._warmer.submit(self._warm_one, path, number)

    def _warm_one(self, path: str, number: int) -> None:
        try:
            if self._page_key(path, number) not in self._pages:
                self.page(path, number)
        except ImageUnavailable:
            pass  # the request for the crop will say why

    def _decode(self, file: Path, number: int) -> np.ndarray:
        try:
            for page in iter_pages(file, max_pixels=self.max_pixels, pdf_dpi=self.pdf_dpi):
                if page.number == number:
                    return page.image
        except BadInputError as exc:
            raise ImageUnavailable(f"cannot read the document's file: {exc}") from None
        raise ImageUnavailable(f"the document has no page {number}")

    def crop_png(self, result_id: int, path: str, number: int, box: Box) -> bytes:
        """The field with a margin around it, as PNG bytes (cached by result id)."""

        def render() -> bytes:
            image = self.page(path, number)
            return encode(cut(image, box), ".png")

        return self._crops.get_or_make(("crop", result_id, path, box), render)  # type: ignore[return-value]

    def page_jpeg(self, path: str, number: int) -> bytes:
        def render() -> bytes:
            return encode(self.page(path, number), ".jpg")

        return self._crops.get_or_make(("page", path, number), render)  # type: ignore[return-value]


def cut(image: np.ndarray, box: Box) -> np.ndarray:
    """The box plus a third of its height on every side, clipped to the page."""
    margin = max(6, box.h // 3)
    height, width = image.shape[:2]
    x0, y0 = max(0, box.x - margin), max(0, box.y - margin)
    x1, y1 = min(width, box.x + box.w + margin), min(height, box.y + box.h + margin)
    if x1 <= x0 or y1 <= y0:
        raise ImageUnavailable("the field's box lies outside its page")
    return image[y0:y1, x0:x1]


def encode(image: np.ndarray, extension: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, PAGE_JPEG_QUALITY] if extension == ".jpg" else []
    ok, data = cv2.imencode(extension, image, params)
    if not ok:
        raise ImageUnavailable("cannot encode the image")
    return data.tobytes()
