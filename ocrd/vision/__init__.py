"""Vision stage: load scanned pages, clean them up, find digit fields, make model crops.

loading.py    iter_pages, sniff_media_type (content sniffing, BadInputError cases)
cleanup.py    working resolution, background flattening, binarisation, deskew
structure.py  ruled lines, underlines, boxes, combs; line removal
fields.py     grouping ink into fields; line and digit crops via ocrd.normalize
"""

from ocrd.vision.fields import find_fields
from ocrd.vision.loading import count_pages, iter_pages, sniff_media_type

__all__ = ["count_pages", "find_fields", "iter_pages", "sniff_media_type"]
