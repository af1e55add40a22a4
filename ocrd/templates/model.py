"""The template file: what a form looks like and what its fields are called.

    name = "claim"            # optional; the file's stem otherwise
    width = 1654              # the reference page, pixels
    height = 2339
    dpi = 200
    source = "blank-claim.png"

    [[fields]]                # one per field, in the order exports list them
    name = "policy_number"    # written as field_1, field_2, ... in reading order
    box = [600, 300, 512, 80] # x, y, w, h in reference-page pixels
    label = [90, 318, 260, 40] # the printed label's box (written by ocrd: a naming hint)
    layout = "comb"           # comb / box / underline / free / printed
    kind = "handwritten"      # handwritten / printed / unknown
    cells = 7                 # combs only
    length = 7                # optional rules: length, min_length, max_length, pattern,
    checksum = "luhn"         #   min, max, checksum (luhn / mod11 / mod97), required

    [fingerprint]             # ORB keypoints of the reference page (written by ocrd)
    ...

A file with a mistake is refused with one line that names the file and the key.
"""

from __future__ import annotations

import base64
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from ocrd.templates.rules import CHECKSUMS, Rules
from ocrd.types import Box

LAYOUTS = ("comb", "box", "underline", "free", "printed")
KINDS = ("handwritten", "printed", "unknown")
FIELD_KEYS = ("name", "box", "label", "layout", "kind", "cells")
RULE_KEYS = tuple(vars(Rules()).keys())
TOP_KEYS = ("name", "width", "height", "dpi", "source", "fields", "fingerprint")
FINGERPRINT_KEYS = ("detector", "width", "height", "points", "descriptors")
_CHUNK = 76  # base64 characters per array item, so editors show the file comfortably
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")


class TemplateError(ValueError):
    """A template file that cannot be used: one line naming the file and the key."""


@dataclass(frozen=True)
class TemplateField:
    name: str
    box: Box  # in reference-page pixels
    layout: str
    kind: str = "handwritten"
    cells: int | None = None
    rules: Rules = field(default_factory=Rules)
    label: Box | None = None  # the printed label's box, page pixels (a hint for naming)


@dataclass(frozen=True)
class Fingerprint:
    """Keypoints of the reference page scaled to `width` x `height` (what alignment needs)."""

    width: int
    height: int
    points: np.ndarray  # (N, 2) float32, fingerprint pixels
    descriptors: np.ndarray  # (N, 32) uint8, ORB
    detector: str = "orb"


@dataclass(frozen=True)
class Template:
    name: str
    width: int
    height: int
    dpi: int
    fields: tuple[TemplateField, ...]
    fingerprint: Fingerprint
    source: str = ""
    path: Path | None = None

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


# -- writing ---------------------------------------------------------------------------------


def template_document(template: Template) -> dict:
    """The template as the TOML document's dict (fields before the long fingerprint)."""
    fp = template.fingerprint
    return {
        "name": template.name,
        "width": template.width,
        "height": template.height,
        "dpi": template.dpi,
        "source": template.source,
        "fields": [_field_document(f) for f in template.fields],
        "fingerprint": {
            "detector": fp.detector,
            "width": fp.width,
            "height": fp.height,
            "points": _encode(fp.points.astype("<f4")),
            "descriptors": _encode(fp.descriptors.astype(np.uint8)),
        },
    }


def _field_document(f: TemplateField) -> dict:
    entry: dict[str, object] = {"name": f.name, "box": f.box.as_list()}
    if f.label is not None:
        entry["label"] = f.label.as_list()
    entry |= {"layout": f.layout, "kind": f.kind}
    if f.cells is not None:
        entry["cells"] = f.cells
    return entry | f.rules.as_dict()


def dump_template(template: Template) -> str:
    return tomli_w.dumps(template_document(template))


def save_template(template: Template, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_template(template), encoding="utf-8")


def _encode(array: np.ndarray) -> list[str]:
    text = base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")
    return [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)]


# -- reading ---------------------------------------------------------------------------------


def load_template(path: Path) -> Template:
    """Read and check one template file; raises TemplateError (file and key named)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: not valid TOML: {exc}") from None
    return parse_template(data, path)


def parse_template(data: dict, path: Path) -> Template:
    check = _Checker(path)
    check.known(data, TOP_KEYS, "")
    name = check.text(data.get("name", path.stem), "name")
    if not _NAME.match(name):
        check.fail("name", f"use letters, digits, _ . - (got {name!r})")
    width = check.integer(data, "width", "width", minimum=1)
    height = check.integer(data, "height", "height", minimum=1)
    dpi = check.integer(data, "dpi", "dpi", minimum=0, default=0)
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        check.fail("fields", "expected at least one [[fields]] table")
    fields = tuple(
        _parse_field(check, entry, f"fields[{i}]", width, height)
        for i, entry in enumerate(raw_fields)
    )
    seen: set[str] = set()
    for i, f in enumerate(fields):
        if f.name in seen:
            check.fail(f"fields[{i}].name", f"{f.name!r} is used twice")
        seen.add(f.name)
    fingerprint = _parse_fingerprint(check, data.get("fingerprint"))
    source = check.text(data.get("source", ""), "source")
    return Template(name, width, height, dpi, fields, fingerprint, source, path)


def _parse_field(check: _Checker, entry: object, key: str, width: int, height: int):
    if not isinstance(entry, dict):
        check.fail(key, "expected a table")
    check.known(entry, FIELD_KEYS + RULE_KEYS, key + ".")
    name = check.text(entry.get("name"), f"{key}.name")
    if not _NAME.match(name):
        check.fail(f"{key}.name", f"use letters, digits, _ . - (got {name!r})")
    box = entry.get("box")
    if not _is_box(box, width, height):
        check.fail(f"{key}.box", f"expected [x, y, w, h] inside the {width}x{height} page")
    label = entry.get("label")
    if label is not None:
        if not _is_box(label, width, height):
            check.fail(f"{key}.label", f"expected [x, y, w, h] inside the {width}x{height} page")
        label = Box(*label)
    layout = check.choice(entry.get("layout", "free"), LAYOUTS, f"{key}.layout")
    kind = check.choice(entry.get("kind", "handwritten"), KINDS, f"{key}.kind")
    cells = check.integer(entry, "cells", f"{key}.cells", minimum=1, default=None)
    rules = _parse_rules(check, entry, key)
    return TemplateField(name, Box(*box), layout, kind, cells, rules, label)


def _is_box(box: object, width: int, height: int) -> bool:
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in box)
        and box[2] >= 1
        and box[3] >= 1
        and box[0] >= 0
        and box[1] >= 0
        and box[0] + box[2] <= width
        and box[1] + box[3] <= height
    )


def _parse_rules(check: _Checker, entry: dict, key: str) -> Rules:
    lengths = {
        name: check.integer(entry, name, f"{key}.{name}", minimum=0, default=None)
        for name in ("length", "min_length", "max_length")
    }
    bounds = {name: check.number(entry, name, f"{key}.{name}") for name in ("min", "max")}
    if None not in bounds.values() and bounds["min"] > bounds["max"]:
        check.fail(f"{key}.min", "is above max")
    pattern = entry.get("pattern")
    if pattern is not None:
        pattern = check.text(pattern, f"{key}.pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            check.fail(f"{key}.pattern", f"not a regular expression: {exc}")
    checksum = entry.get("checksum")
    if checksum is not None:
        checksum = check.choice(checksum, CHECKSUMS, f"{key}.checksum")
    required = entry.get("required", False)
    if not isinstance(required, bool):
        check.fail(f"{key}.required", f"expected true or false, got {required!r}")
    return Rules(required, pattern=pattern, checksum=checksum, **lengths, **bounds)


def _parse_fingerprint(check: _Checker, entry: object) -> Fingerprint:
    if not isinstance(entry, dict):
        check.fail("fingerprint", "missing: re-create the template with `ocrd template create`")
    check.known(entry, FINGERPRINT_KEYS, "fingerprint.")
    detector = check.choice(entry.get("detector", "orb"), ("orb",), "fingerprint.detector")
    width = check.integer(entry, "width", "fingerprint.width", minimum=1)
    height = check.integer(entry, "height", "fingerprint.height", minimum=1)
    points = _decode(check, entry.get("points"), "fingerprint.points", "<f4", 2)
    descriptors = _decode(check, entry.get("descriptors"), "fingerprint.descriptors", "u1", 32)
    if len(points) != len(descriptors):
        check.fail("fingerprint", "points and descriptors differ in number")
    return Fingerprint(width, height, points.astype(np.float32), descriptors, detector)


def _decode(check: _Checker, value: object, key: str, dtype: str, columns: int) -> np.ndarray:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        check.fail(key, "expected a list of base64 strings")
    try:
        raw = base64.b64decode("".join(value), validate=True)
        return np.frombuffer(raw, dtype=dtype).reshape(-1, columns).copy()
    except (ValueError, TypeError) as exc:
        check.fail(key, f"not valid base64 {columns}-column data ({exc})")
        raise  # unreachable: fail raises


class _Checker:
    """Type checks that raise TemplateError("<file>: <key>: <problem>")."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str):  # noqa: ANN201 (never returns)
        raise TemplateError(f"{self.path}: {key}: {problem}")

    def known(self, table: dict, allowed: tuple[str, ...], prefix: str) -> None:
        for name in table:
            if name not in allowed:
                self.fail(prefix + name, f"unknown key (known: {', '.join(allowed)})")

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {value!r}")
        return value

    def choice(self, value: object, allowed: tuple[str, ...], key: str) -> str:
        if value not in allowed:
            self.fail(key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def integer(self, table: dict, name: str, key: str, *, minimum: int, default=...):  # noqa: ANN001, ANN201
        if name not in table:
            if default is ...:
                self.fail(key, "missing")
            return default
        value = table[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.fail(key, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def number(self, table: dict, name: str, key: str) -> float | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.fail(key, f"expected a number, got {value!r}")
        return value
