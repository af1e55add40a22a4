"""Field finding and reading on generated evaluation forms (MNIST t10k digits).

Prints, per layout (comb / underline / box / free / printed) and per degradation:
fields located with the right extent (IoU >= 0.5 with the truth box), fields read exactly,
digits reported where there are none (per page), and vision time per 300-dpi A4 page on one
core (model inference excluded; timed separately). Vision time is the CPU time of the calling
thread with OpenCV limited to one thread, so other load on the machine barely skews it.

    python -m bench.forms --pages 3            # 3 pages per degradation, vision + models
    python -m bench.forms --pages 3 --vision-only
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from ocrd.types import Page
from ocrd.vision import find_fields
from training.forms import (
    DEGRADATIONS,
    MATCH_IOU,
    DigitBank,
    FormPage,
    best_match,
    render_page,
)


class Tally:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        # per kind: [fields, accepted (not needs_review), wrong among the accepted]
        self.straight: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])

    def add(self, key: tuple[str, str], located: bool, exact: bool) -> None:
        row = self.counts[key]
        row[0] += 1
        row[1] += located
        row[2] += exact


def evaluate_page(page: FormPage, recognizer, tally: Tally) -> tuple[float, float, int]:
    """Returns (vision seconds, model seconds, digits reported outside any truth field)."""
    from ocrd.pipeline import read_fields

    image_page = Page(number=1, image=page.image, dpi=page.dpi)
    start = time.thread_time()
    fields = find_fields(image_page)
    vision_s = time.thread_time() - start
    readings = None
    model_s = 0.0
    if recognizer is not None:
        start = time.perf_counter()
        readings = read_fields(fields, recognizer)
        model_s = time.perf_counter() - start
    found = [(f.box, r) for f, r in zip(fields, readings or [None] * len(fields), strict=True)]
    if readings is not None:
        found = [(box, r) for box, r in found if r is not None]
    used: set[int] = set()
    for truth in page.fields:
        best = best_match([box for box, _ in found], truth.box)
        located = best is not None
        exact = located and found[best][1] is not None and found[best][1].text == truth.text
        if located:
            used.add(best)
        reading = found[best][1] if located else None
        accepted = reading is not None and not reading.needs_review
        row = tally.straight[truth.kind]
        row[0] += 1
        row[1] += accepted
        row[2] += accepted and not exact
        for key in ((truth.layout, "layout"), (page.degradation, "degradation")):
            tally.add(key, located, exact)
        tally.add((truth.kind, "kind"), located, exact)
    spurious = 0
    for index, (_box, reading) in enumerate(found):
        if index not in used:
            spurious += len(reading.text) if reading is not None else 1
    return vision_s, model_s, spurious


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=3, help="pages per degradation")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--dpi", type=int, default=0, help="0 = random 150-600 per page")
    parser.add_argument("--vision-only", action="store_true", help="skip the models")
    parser.add_argument("--dump", type=Path, help="write each page as PNG here for inspection")
    parser.add_argument(
        "--digits",
        choices=("t10k", "holdout"),
        default="t10k",
        help="t10k for the figures; holdout (MNIST-train digits no model trains on) for trying "
        "out vision or fusion changes without tuning on t10k",
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # the target is per core
    bank = DigitBank.holdout() if args.digits == "holdout" else DigitBank.load("t10k")
    rng = np.random.default_rng(args.seed)
    recognizer = None
    if not args.vision_only:
        from ocrd.recognition import load_recognizer

        recognizer = load_recognizer()
    tally = Tally()
    spurious_by_deg: dict[str, int] = defaultdict(int)
    times_300: list[float] = []
    model_times: list[float] = []
    pages = 0
    for repeat in range(args.pages):
        for degradation in DEGRADATIONS:
            dpi = args.dpi or int(rng.choice([150, 200, 300, 400, 600]))
            page = render_page(bank, rng, dpi=dpi, degradation=degradation)
            if args.dump:
                args.dump.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(args.dump / f"{degradation}-{repeat}.png"), page.image)
            vision_s, model_s, spurious = evaluate_page(page, recognizer, tally)
            if dpi == 300:
                times_300.append(vision_s)
            model_times.append(model_s)
            spurious_by_deg[degradation] += spurious
            pages += 1
    # Timing pages: 300 dpi A4, the stated target.
    for _ in range(max(3, args.pages)):
        page = render_page(bank, rng, dpi=300, degradation="clean")
        start = time.thread_time()
        find_fields(Page(1, page.image, 300))
        times_300.append(time.thread_time() - start)
    _report(
        tally, spurious_by_deg, pages, args.pages, times_300, model_times, recognizer, args.digits
    )
    _report_decoding(render_page(bank, rng, dpi=300, degradation="clean"))


def _report_decoding(page: FormPage) -> None:
    """Time to decode one 300-dpi A4 page from each written format (not part of find_fields)."""
    import tempfile

    from ocrd.vision import iter_pages
    from training.forms import write_document

    print("\ndecode time per 300-dpi A4 page, 1 thread (iter_pages):")
    bilevel = FormPage(np.where(page.image < 160, 0, 255).astype(np.uint8), 300, "bilevel")
    with tempfile.TemporaryDirectory() as folder:
        for name, fmt, source in [
            ("png", "png", page),
            ("jpeg", "jpeg", page),
            ("tiff lzw", "tiff", page),
            ("tiff g4", "tiff", bilevel),
            ("pdf", "pdf", page),
        ]:
            path = Path(folder) / f"page.{fmt}"
            write_document([source], path, fmt)
            runs = []
            for _ in range(3):
                start = time.thread_time()
                for _page in iter_pages(path):
                    pass
                runs.append(time.thread_time() - start)
            print(f"  {name:9} {1000 * min(runs):5.0f} ms")


def _report(
    tally, spurious_by_deg, pages, per_deg, times_300, model_times, recognizer, digits
) -> None:
    reading = recognizer is not None
    source = "MNIST t10k digits" if digits == "t10k" else "MNIST-train hold-out digits"
    print(f"{pages} evaluation pages ({source}), match = IoU >= {MATCH_IOU}")
    header = f"{'':14} {'fields':>6} {'located':>8}" + (f" {'exact':>7}" if reading else "")
    for section in ("kind", "layout", "degradation"):
        print(
            f"\nper {section}:\n{header}"
            + ("  spurious digits/page" if section == "degradation" else "")
        )
        for (name, sec), (total, located, exact) in sorted(tally.counts.items()):
            if sec != section:
                continue
            line = f"{name:14} {total:6d} {100 * located / total:7.1f}%"
            if reading:
                line += f" {100 * exact / total:6.1f}%"
            if section == "degradation":
                line += f"  {spurious_by_deg[name] / per_deg:.2f}"
            print(line)
    print(f"\nspurious digits per page (overall): {sum(spurious_by_deg.values()) / pages:.2f}")
    if reading:
        from ocrd.calibration import shipped_calibration

        calibration = shipped_calibration()
        thresholds = {name: calibration.accept_for(name) for name in ("comb", "free", "printed")}
        print(f"straight-through at the shipped accept thresholds (comb / written / printed: "
              f"{' / '.join(str(v) for v in thresholds.values())}):")  # fmt: skip
        for kind, (total, accepted, wrong) in sorted(tally.straight.items()):
            print(f"  {kind:12} {100 * accepted / total:5.1f}% of {total} fields accepted, "
                  f"{100 * wrong / max(1, accepted):.2f}% of those wrong")  # fmt: skip
    ms = 1000 * np.array(times_300)
    median, worst = np.median(ms), ms.max()
    print(f"vision CPU time per 300-dpi A4 page, 1 thread: median {median:.0f}, max {worst:.0f} ms")
    if reading:
        model_ms = 1000 * np.median(model_times)
        print(f"model time per page (all fields batched): median {model_ms:.0f} ms")


if __name__ == "__main__":
    main()
