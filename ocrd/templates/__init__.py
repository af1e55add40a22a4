"""Form templates: named fields, page alignment and validation rules.

model.py    the template file (TOML): load with checks, save
create.py   a template from one page (vision's frames and fields)
align.py    which template a page is and the page -> template homography (ORB + RANSAC)
regions.py  reading a template field vision missed from its aligned region
evidence.py what is written in a field once its own rules are erased
apply.py    naming a matched page's readings, empty fields, rule verdicts
rules.py    length / pattern / min / max / checksum (luhn, mod11, mod97) / required
overlay.py  the `ocrd template check` picture
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ocrd.templates.align import Matcher, PageMatch
from ocrd.templates.apply import apply_match, template_dpi
from ocrd.templates.evidence import with_writing
from ocrd.templates.model import Template, TemplateError, load_template, save_template
from ocrd.templates.regions import missed_fields
from ocrd.types import Box, Field, FieldReading, Page
from ocrd.vision.loading import to_file_coordinates

__all__ = [
    "PageMatch",
    "Template",
    "TemplateError",
    "TemplateSet",
    "load_template",
    "load_templates",
    "match_page",
    "name_pages",
    "save_template",
]

PageShape = tuple[int, ...]


@dataclass
class TemplateSet:
    """Every template of a folder, ready to match pages against."""

    templates: list[Template] = field(default_factory=list)
    directory: Path | None = None

    def __post_init__(self) -> None:
        self.matcher = Matcher(self.templates)

    def __bool__(self) -> bool:
        return bool(self.templates)

    def __len__(self) -> int:
        return len(self.templates)

    def get(self, name: str) -> Template | None:
        return next((t for t in self.templates if t.name == name), None)

    def match(self, page: Page) -> PageMatch | None:
        return self.matcher.match(page.image)


def template_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.toml") if p.is_file())


def load_templates(directory: Path | None) -> TemplateSet:
    """All templates in `directory` (none when it does not exist). Raises TemplateError for
    the first file with a mistake, or when two files use one name."""
    if directory is None or not Path(directory).is_dir():
        return TemplateSet([], directory)
    templates: list[Template] = []
    for path in template_files(directory):
        template = load_template(path)
        clash = next((t for t in templates if t.name == template.name), None)
        if clash is not None:
            raise TemplateError(f"{path}: name: {template.name!r} is also used by {clash.path}")
        templates.append(template)
    return TemplateSet(templates, Path(directory))


def match_page(
    page: Page, fields: list[Field], templates: TemplateSet | None
) -> tuple[tuple[PageMatch | None, PageShape], list[Field]]:
    """The template the page matches (None: none) with the page's shape, both in the file's
    pixels like the fields' boxes (what `name_pages` takes), and the page's `fields` plus one
    for each template field vision missed that holds ink (`regions.missed_fields`). The match
    carries what is written in each field (`evidence.with_writing`)."""
    reduced = page.reduced
    shape = tuple(int(round(side * reduced)) for side in page.image.shape[:2])
    match = templates.match(page) if templates else None
    if match is None:
        return (None, shape), list(fields)
    in_image = [_scaled_box(f, 1 / reduced) for f in fields] if reduced != 1 else fields
    extra = to_file_coordinates(missed_fields(page, match, in_image), page)
    match = with_writing(page.image, match, template_dpi(match.template))
    if reduced != 1:  # file pixels -> page image pixels -> template pixels
        to_image = np.diag([1 / reduced, 1 / reduced, 1.0])
        match = dataclasses.replace(match, homography=match.homography @ to_image)
    return (match, shape), list(fields) + extra


def _scaled_box(f: Field, factor: float) -> Field:
    b = f.box
    box = Box(int(b.x * factor), int(b.y * factor), max(1, int(b.w * factor)),
              max(1, int(b.h * factor)))  # fmt: skip
    return dataclasses.replace(f, box=box)


def name_pages(
    readings: list[FieldReading],
    matches: dict[int, tuple[PageMatch | None, tuple[int, ...]]],
) -> list[FieldReading]:
    """The readings of matched pages named after their template's fields, one result per
    field (`apply.apply_match`). Pages are matched while they are decoded and read later,
    after the page images are gone: `matches` maps a page number to what `match_page` gave
    (match or None, page shape)."""
    out: list[FieldReading] = []
    for number, (match, shape) in sorted(matches.items()):
        on_page = [r for r in readings if r.page == number]
        out.extend(on_page if match is None else apply_match(match, on_page, number, shape))
    out.extend(r for r in readings if r.page not in matches)
    return out
