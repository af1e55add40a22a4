"""Form templates on a mixed inbox: matching, naming, field accuracy and matching time.

Three fixed forms (training.forms.FORM_FAMILIES): a template is created from one clean
filled copy of each (`create_template`, what `ocrd template create` does) and its fields are
renamed as a user would. Then N filled copies of each (MNIST t10k handwriting, 10% of fields
left empty) are scanned with rotation up to +-5 degrees, scale 0.9-1.1, shifts up to 0.25 in,
a perspective tilt (corners moved up to 2% of the page), 150-600 dpi, a photometric
degradation, and written round-robin as PNG, JPEG, TIFF and PDF, mixed with pages of forms
that have no template (training.forms.render_page). Every file goes through vision and the
models once; the readings are then named with the templates (timed) and scored:

- pages matched to the right template / a wrong one / none; no-template pages matched
- handwritten fields named correctly: the reading that covers the field (IoU >= 0.5) carries
  the field's name
- field accuracy without templates (the reading covering the field reads the truth) and with
  them (the result named after the field reads the truth; empty fields must come out empty)
- matching + alignment time per page: CPU time of this thread, OpenCV on one thread; and
  the evidence test's (what is written in each field of a matched page), timed apart

    python -m bench.templates                  # 60 pages per template, 30 without
    python -m bench.templates --pages 10       # quick
    python -m bench.templates --no-ruling      # ablation: ORB + RANSAC without the ruling check
    python -m bench.templates --match-only     # only the matching, timed (a minute)
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from ocrd.templates import TemplateSet, name_pages, save_template
from ocrd.templates.apply import template_dpi
from ocrd.templates.create import create_template
from ocrd.templates.evidence import with_writing
from ocrd.templates.model import Template
from ocrd.templates.regions import missed_fields
from ocrd.templates.rules import Rules
from ocrd.types import Page
from training.forms import (
    FORM_FAMILIES,
    FORMATS,
    DigitBank,
    FormLayout,
    best_match,
    degrade,
    iou,
    render_form,
    render_page,
    warp_scan,
    write_document,
)

PHOTOMETRIC = ("clean", "blur", "noise", "speckle", "jpeg", "bilevel", "shadow", "grey")
DPIS = (150, 200, 300, 400, 600)


def named_template(form: FormLayout, bank: DigitBank, rng: np.random.Generator) -> Template:
    """The template made from a clean filled copy, its fields renamed after the form (what the
    user does by hand) and combs given their length."""
    reference = render_form(form, bank, rng, dpi=300)
    template = create_template(form.name, Page(1, reference.image, 300))
    fields = []
    for tfield in template.fields:
        spec = _spec_at(form, reference, tfield.box)
        name = spec.name if spec is not None else tfield.name
        rules = Rules(length=tfield.cells) if tfield.cells else tfield.rules
        fields.append(replace(tfield, name=name, rules=rules))
    return replace(template, fields=tuple(fields))


def _spec_at(form: FormLayout, reference, box):  # noqa: ANN001, ANN202
    for spec, truth in zip(form.fields, reference.fields, strict=True):
        x, y, w, h = truth.box
        cx, cy = x + w / 2, y + h / 2
        if box.x <= cx <= box.x + box.w and box.y <= cy <= box.y + box.h:
            return spec
    return None


def make_inbox(out: Path, bank: DigitBank, rng: np.random.Generator, pages: int, others: int):
    """Files in `out` and the truth per file: (family or None, [(name, TruthField)])."""
    jobs = [(name, i) for i in range(pages) for name in FORM_FAMILIES] + [
        (None, i) for i in range(others)
    ]
    order = rng.permutation(len(jobs))
    truth = {}
    for number, index in enumerate(order):
        family, _ = jobs[index]
        dpi = int(rng.choice(DPIS))
        if family is None:
            page = render_page(bank, rng, dpi=dpi, degradation=str(rng.choice(PHOTOMETRIC)))
            names = [None] * len(page.fields)
        else:
            form = FORM_FAMILIES[family]
            page = warp_scan(render_form(form, bank, rng, dpi=dpi, blank_rate=0.1), rng)
            page.degradation = PHOTOMETRIC[number % len(PHOTOMETRIC)]
            page = degrade(page, rng)
            names = [spec.name for spec in form.fields]
        fmt = FORMATS[number % len(FORMATS)]
        ext = {"png": "png", "jpeg": "jpg", "tiff": "tif", "pdf": "pdf"}[fmt]
        path = out / f"scan-{number:04d}.{ext}"
        record = write_document([page], path, fmt)
        boxes = record["pages"][0]["fields"]  # in the pixels ocrd will see (PDF: 300 dpi)
        fields = [
            (name, f["text"], f["kind"], f["box"]) for name, f in zip(names, boxes, strict=True)
        ]
        truth[path] = (family, fields)
    return truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=60, help="filled pages per template")
    parser.add_argument("--others", type=int, default=None, help="pages without a template")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-ruling", action="store_true", help="ablation: skip ruling check")
    parser.add_argument("--verbose", action="store_true", help="print every miss")
    parser.add_argument(
        "--match-only", action="store_true",
        help="only decode the pages and time the matching (no vision, no models): quick",
    )  # fmt: skip
    args = parser.parse_args(argv)
    others = args.others if args.others is not None else args.pages // 2
    if args.no_ruling:
        from ocrd.templates import align

        align.MIN_RULING = 0.0
    from ocrd.pipeline import extract_fields, read_fields
    from ocrd.recognition import load_recognizer

    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    bank = DigitBank.load("t10k")
    recognizer = None if args.match_only else load_recognizer()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        templates = [named_template(form, bank, rng) for form in FORM_FAMILIES.values()]
        for template in templates:  # through the file, as the daemon loads them
            save_template(template, folder / "templates" / f"{template.name}.toml")
        from ocrd.templates import load_templates

        template_set: TemplateSet = load_templates(folder / "templates")
        inbox = folder / "inbox"
        inbox.mkdir()
        truth = make_inbox(inbox, bank, rng, args.pages, others)
        if args.match_only:
            return _time_matching(template_set, truth)
        score = Score()
        score.templates = template_set.templates
        for path, (family, fields) in truth.items():
            for page, found in extract_fields(path):
                readings = [r for r in read_fields(found, recognizer) if r is not None]
                start = time.thread_time()
                match = template_set.match(page)
                score.seconds.append(time.thread_time() - start)
                extra = missed_fields(page, match, found) if match is not None else []
                if match is not None:  # what match_page does after the match
                    start = time.thread_time()
                    match = with_writing(page.image, match, template_dpi(match.template))
                    score.evidence_seconds.append(time.thread_time() - start)
                score.regions += len(extra)  # (the bench's pages are never reduced on load)
                more = [r for r in read_fields(extra, recognizer) if r is not None]
                shape = page.image.shape
                named = name_pages(copy.deepcopy(readings) + more, {page.number: (match, shape)})
                score.add(family, fields, readings, named)
                if args.verbose:
                    score.explain(path, page, family, fields, readings, named)
    score.report(args, others, len(templates))


def _time_matching(template_set: TemplateSet, truth: dict) -> None:
    """Pages matched right / wrong / none and the matching time, pages of a template's form
    and of other forms apart (the other forms are tried against every template)."""
    from ocrd.vision.loading import iter_pages

    seconds: dict[str, list[float]] = {"template": [], "other": []}
    verdicts: Counter = Counter()
    for path, (family, _fields) in truth.items():
        for page in iter_pages(path):
            start = time.thread_time()
            match = template_set.match(page)
            seconds["other" if family is None else "template"].append(time.thread_time() - start)
            name = match.template.name if match is not None else None
            verdicts[family is None, "none" if name is None else name == family] += 1
    print(f"template pages: right {verdicts[False, True]}, wrong {verdicts[False, False]}, "
          f"none {verdicts[False, 'none']}; others matched {verdicts[True, False]}")  # fmt: skip
    every = np.array(seconds["template"] + seconds["other"]) * 1000
    for label, ms in (("all", every), *((k, np.array(v) * 1000) for k, v in seconds.items())):
        print(f"matching + alignment, {label} pages (CPU ms, 1 thread): mean {ms.mean():.1f}, "
              f"median {np.median(ms):.1f}, p95 {np.percentile(ms, 95):.1f}")  # fmt: skip


def _diagnose(page: Page, templates: list[Template]) -> str:
    """Per template: ratio-test matches / RANSAC inliers / spread / plausible / ruling."""
    from ocrd.templates import align

    small, scale = align.reduce(page.image)
    points, descriptors = align._detect(small, align.PAGE_FEATURES)
    ink = align._ink_mask(small)
    out = []
    for t in templates:
        fp = t.fingerprint
        query, train = align._Candidates(descriptors, fp.descriptors).ratio_matches()
        good = query
        src, dst = points[query], fp.points[train]
        h, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, align.RANSAC_PX)
        if h is None:
            out.append(f"{t.name}: {len(good)} no fit")
            continue
        spread = align._spread(dst[mask.ravel() > 0], fp.height)
        fitted = align._fit(points, descriptors, t, scale, small.shape)
        h = fitted[0] if fitted is not None else h  # (homography, inliers, spread)
        try:
            ruling = align._ruling_score(t, np.linalg.inv(h), ink)[0]
        except np.linalg.LinAlgError:
            ruling = float("nan")
        plausible = align._plausible(h, small.shape)
        out.append(f"{t.name}: {len(good)}/{int(mask.sum())}/{spread:.2f}/{plausible}/{ruling:.2f}")
    return "  ".join(out)


class Score:
    def __init__(self) -> None:
        self.templates: list[Template] = []
        self.pages: Counter = Counter()
        self.seconds: list[float] = []
        self.evidence_seconds: list[float] = []  # evidence.with_writing per matched page
        self.fields: Counter = Counter()
        self.regions = 0  # fields read from aligned regions of template fields vision missed

    def add(self, family, fields, readings, named) -> None:  # noqa: ANN001
        got = {r.template for r in named if r.template} or {None}
        matched = got.pop()
        if family is None:
            self.pages["other", "matched" if matched else "none"] += 1
            return
        verdict = "right" if matched == family else ("none" if matched is None else "wrong")
        self.pages["template", verdict] += 1
        by_name = {r.field_name: r for r in named if r.field_name}
        for name, text, kind, box in fields:
            if kind != "handwritten":
                continue
            covering = best_match([r.box for r in readings], box) if text else None
            if text:
                self.fields["written"] += 1
                located = covering is not None
                self.fields["located"] += located
                self.fields["plain_exact"] += located and readings[covering].text == text
                if located:
                    named_ok = any(
                        r.field_name == name and iou(r.box, readings[covering].box) > 0.99
                        for r in named
                    )
                    self.fields["named_ok"] += named_ok
            else:
                self.fields["empty"] += 1
                self.fields["empty_ok"] += name in by_name and by_name[name].text == ""
            result = by_name.get(name)
            self.fields["template_exact" if text else "-"] += bool(text) and (
                result is not None and result.text == text
            )

    def explain(self, path, page, family, fields, readings, named) -> None:  # noqa: ANN001
        matched = next((r.template for r in named if r.template), None)
        if matched != family:
            print(f"  {path.name} {page.image.shape} dpi {page.dpi}: {family} matched {matched}")
            print("    " + _diagnose(page, self.templates))
            cv2.imwrite(f"/tmp/t11/miss-{path.stem}.png", page.image)
            return
        if family is None:
            return
        by_name = {r.field_name: r for r in named if r.field_name}
        for name, text, kind, box in fields:
            got = by_name.get(name)
            covering = best_match([r.box for r in named], box) if text else None
            if covering is not None and named[covering].field_name != name:
                print(f"  {path.name} {name} {box}: named {named[covering].field_name} "
                      f"{named[covering].box}")  # fmt: skip
            if kind == "handwritten" and (got is None or got.text != text):
                covering = best_match([r.box for r in readings], box) if text else None
                plain = readings[covering].text if covering is not None else None
                print(f"  {path.name} {name}: truth {text!r} plain {plain!r} "
                      f"named {got.text if got else None!r}")  # fmt: skip

    def report(self, args, others: int, templates: int) -> None:  # noqa: ANN001
        p, f = self.pages, self.fields
        total = sum(v for (group, _), v in p.items() if group == "template")
        right = p["template", "right"]
        print(f"{templates} templates, {args.pages} filled pages each + {others} pages of "
              f"forms without a template (seed {args.seed}"
              f"{', no ruling check' if args.no_ruling else ''})")  # fmt: skip
        print(f"pages matched to the right template: {right}/{total} ({right / total:.1%}), "
              f"wrong: {p['template', 'wrong']}, none: {p['template', 'none']}")  # fmt: skip
        print(f"pages without a template matched: {p['other', 'matched']}/{others}")
        w = f["written"]
        print(f"handwritten fields written: {w}, located by vision: {f['located']}, "
              f"of those named correctly: {f['named_ok']}/{f['located']}")  # fmt: skip
        print(f"field accuracy without templates: {f['plain_exact']}/{w} "
              f"({f['plain_exact'] / w:.1%}); with templates: {f['template_exact']}/{w} "
              f"({f['template_exact'] / w:.1%})")  # fmt: skip
        print(f"empty handwritten fields reported empty: {f['empty_ok']}/{f['empty']}")
        print(f"fields read from the aligned regions of template fields vision missed: "
              f"{self.regions}")  # fmt: skip
        ms = np.array(self.seconds) * 1000
        print(f"matching + alignment per page (CPU ms, 1 thread): mean {ms.mean():.1f}, "
              f"median {np.median(ms):.1f}, p95 {np.percentile(ms, 95):.1f}, "
              f"max {ms.max():.1f}")  # fmt: skip
        ev = np.array(self.evidence_seconds or [0.0]) * 1000
        print(f"evidence test (what is written in each field) per matched page, CPU ms: "
              f"median {np.median(ev):.1f}, p95 {np.percentile(ev, 95):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
