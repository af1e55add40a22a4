"""The resolution a scanned PDF page was made at, so it is rasterised in the scan's own pixels.

A scanner's PDF page is one image object drawn over (nearly) the whole page. Rendering it at
that image's own resolution gives back the scan's pixel grid: boxes are then what a viewer of
the extracted image shows, and nothing is up- or down-sampled on the way. A page made of text
and vector graphics has no such resolution; the caller falls back to its default.
"""

from __future__ import annotations

MIN_COVER = 0.8  # the image covers at least this share of the page's width and height
MIN_DPI, MAX_DPI = 50, 1200


def native_dpi(page) -> int | None:  # noqa: ANN001 (pypdfium2.PdfPage)
    """The dpi of the one image covering the page, or None (vector page, several images)."""
    import pypdfium2.raw as pdfium_c

    try:
        width_pt, height_pt = page.get_size()
        images = list(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2))
    except Exception:  # a page PDFium cannot walk still renders at the default
        return None
    best = None
    for image in images:
        try:
            left, bottom, right, top = image.get_bounds()
            pixel_width, pixel_height = image.get_px_size()
        except Exception:
            continue
        drawn_w, drawn_h = abs(right - left), abs(top - bottom)
        if drawn_w < MIN_COVER * width_pt and drawn_h < MIN_COVER * height_pt:
            continue
        if drawn_w <= 0 or drawn_h <= 0:
            continue
        # A rotated placement swaps the image's axes on the page.
        swapped = (pixel_width > pixel_height) != (drawn_w > drawn_h)
        along_w = pixel_height if swapped else pixel_width
        dpi = along_w / (drawn_w / 72.0)
        if best is None or dpi > best:
            best = dpi
    if best is None or not MIN_DPI <= best <= MAX_DPI:
        return None
    return int(round(best))
