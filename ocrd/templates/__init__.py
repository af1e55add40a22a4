"""Form templates: named fields, page alignment and validation rules.

model.py    the template file (TOML): load with checks, save
create.py   a template from one page (vision's frames and fields)
align.py    which template a page is and the page -> template homography (ORB + RANSAC)
apply.py    naming a matched page's readings, empty fields, rule verdicts
rules.py    length / pattern / min / max / checksum (luhn, mod11, mod97) / required
overlay.py  the `ocrd template check` picture
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocrd.templates.align import Matcher, PageMatch
from ocrd.templates.apply import apply_match
from ocrd.templates.model import Template, TemplateError, load_template, save_template
from ocrd.types import FieldReading, Page

__all__ = [
    "PageMatch",
    "Template",
    "TemplateError",
    "TemplateSet",
    "apply_templates",
    "load_template",
    "load_templates",
    "save_template",
]


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


def apply_templates(
    page: Page, readings: list[FieldReading], templates: TemplateSet | None
) -> list[FieldReading]:
    """The page's readings named after the template it matches (as they were when it
    matches none, or there are no templates)."""
    if not templates:
        return readings
    match = templates.match(page)
    if match is None:
        return readings
    return apply_match(match, readings, page.number, page.image.shape)


def name_pages(
    readings: list[FieldReading],
    matches: dict[int, tuple[PageMatch | None, tuple[int, ...]]],
) -> list[FieldReading]:
    """`apply_templates` for a whole document whose pages were matched while they were
    decoded (the daemon fuses readings later, after the page images are gone): `matches`
    maps a page number to its match (None: no template) and the page's image shape."""
    out: list[FieldReading] = []
    for number, (match, shape) in sorted(matches.items()):
        on_page = [r for r in readings if r.page == number]
        out.extend(on_page if match is None else apply_match(match, on_page, number, shape))
    out.extend(r for r in readings if r.page not in matches)
    return out
