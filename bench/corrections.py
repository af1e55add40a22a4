"""Experiment: do 200 reviewed fields from a few writers raise accuracy on other pages of the
same writers? (the review loop feeding training).

Writers the generator never makes: each is a fixed style applied to every digit they write
(a slant, a stroke weight, a width; see WRITERS). Their review pages are written with MNIST-train
hold-out digits, their evaluation pages with MNIST t10k digits (evaluation only), so no digit
image is shared. The pipeline reads the review pages into a SQLite store; a simulated reviewer
accepts or corrects fields from the ground truth until 200 are decided; `python -m training
corrections` exports them and `python -m training digit --init ocrd/models/digits.keras
--extra DIR` fine-tunes the digit model (1 epoch). Both models then read the evaluation pages:
fields read exactly, before and after.

    python bench/corrections.py                 # ~10 min on 2 cores
    python bench/corrections.py --pages 4 --epochs 1
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrd.recognition import MODELS_DIR, Recognizer  # noqa: E402
from ocrd.store import Result, documents, open_store  # noqa: E402
from ocrd.store.reviews import Decision, ReviewStatus, decide  # noqa: E402
from training.forms import DigitBank, best_match, render_page  # noqa: E402
from training.readers import load_mnist  # noqa: E402

HANDWRITTEN = ("comb", "underline", "box", "free")
# name -> (shear, stroke: +dilate / -erode pixels, width factor)
WRITERS = {"slanted-heavy": (0.6, 2, 1.0), "backhand-narrow": (-0.5, 0, 0.55),
           "wide-thin": (0.15, -1, 1.6)}  # fmt: skip


def styled(images: np.ndarray, shear: float, stroke: int, width: float) -> np.ndarray:
    """The writer's style applied to 28x28 MNIST digits (kept 28x28 for DigitBank)."""
    out = np.empty_like(images)
    kernel = np.ones((2, 2), np.uint8)
    for i, image in enumerate(images):
        big = cv2.resize(image, (56, 56), interpolation=cv2.INTER_LINEAR)
        if stroke > 0:
            big = cv2.dilate(big, kernel, iterations=stroke)
        elif stroke < 0:
            big = cv2.erode(big, kernel, iterations=-stroke)
        matrix = np.float32([[width, shear, 28 - 28 * width - 28 * shear], [0, 1, 0]])
        big = cv2.warpAffine(big, matrix, (56, 56), flags=cv2.INTER_LINEAR)
        out[i] = cv2.resize(big, (28, 28), interpolation=cv2.INTER_AREA)
    return out


def writer_banks(source: tuple[np.ndarray, np.ndarray]) -> dict[str, DigitBank]:
    images, labels = source
    return {name: DigitBank(styled(images, *style), labels) for name, style in WRITERS.items()}


def pages_of(banks: dict[str, DigitBank], count: int, seed: int, folder: Path) -> list:
    """(path, truth fields) for ``count`` pages per writer, 300 dpi, handwritten layouts."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for name, bank in banks.items():
        for index in range(count):
            page = render_page(bank, rng, layouts=HANDWRITTEN, degradation="clean")
            path = folder / f"{name}-{index}.png"
            cv2.imwrite(str(path), page.image)
            written.append((path, page.fields))
    return written


def read_into(store, recognizer: Recognizer, pages: list) -> list[tuple[int, str]]:  # noqa: ANN001
    """Read every page into the store; (result id, true text) per truth field located."""
    from ocrd.pipeline import read_document

    located = []
    for path, truths in pages:
        reading = read_document(path, recognizer)
        with store.session() as session:
            document = documents.register(session, path, documents.digest_file(path))
            documents.start(session, document.id)
            documents.finish(session, document.id, reading)
            results = list(session.query(Result).filter(Result.document_id == document.id))
        boxes = [[r.x, r.y, r.w, r.h] for r in results]
        for truth in truths:
            best = best_match(boxes, truth.box)
            if best is not None:
                located.append((results[best].id, truth.text))
    return located


def accuracy(recognizer: Recognizer, pages: list) -> tuple[int, int]:
    """(fields read exactly, truth fields) over ``pages``; a field not located counts wrong."""
    from ocrd.pipeline import read_document

    right = total = 0
    for path, truths in pages:
        fields = read_document(path, recognizer).fields
        boxes = [f.box for f in fields]
        for truth in truths:
            total += 1
            best = best_match(boxes, truth.box)
            right += best is not None and fields[best].text == truth.text
    return right, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=200, help="fields the reviewer decides")
    parser.add_argument("--pages", type=int, default=6, help="evaluation pages per writer")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocrd-bench-corrections-"))
    started = time.monotonic()
    try:
        before = Recognizer(MODELS_DIR)
        holdout = DigitBank.holdout()
        images = holdout.images
        labels = np.zeros(len(images), np.int64)
        for digit, where in enumerate(holdout.by_label):
            labels[where] = digit
        review_banks = writer_banks((images, labels))
        eval_banks = writer_banks(load_mnist("t10k"))
        store = open_store(f"sqlite:///{work / 'review.db'}")
        decided = 0
        review_pages = 0
        while decided < args.fields:  # a page per writer at a time until enough are decided
            batch = pages_of(review_banks, 1, 100 + review_pages, work / f"review-{review_pages}")
            review_pages += len(batch)
            located = read_into(store, before, batch)
            with store.session() as session:
                for result_id, truth in located:
                    if decided == args.fields:
                        break
                    text = session.get(Result, result_id).text
                    status = ReviewStatus.ACCEPTED if text == truth else ReviewStatus.CORRECTED
                    decide(session, Decision(result_id, status, truth, "bench"))
                    decided += 1
        print(f"review: {review_pages} pages read, {decided} fields decided "
              f"({time.monotonic() - started:.0f}s)", flush=True)  # fmt: skip
        url = store.url.render_as_string(hide_password=False)
        store.dispose()
        from training.__main__ import main as training

        corrections = work / "corrections"
        training(["corrections", "--db", url, "--out", str(corrections)])
        models = work / "models"
        shutil.copytree(MODELS_DIR, models, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
        training(["digit", "--epochs", str(args.epochs), "--seed", "5", "--init",
                  str(MODELS_DIR / "digits.keras"), "--extra", str(corrections), "--out",
                  str(models), "--model-version", "corrections"])  # fmt: skip
        after = Recognizer(models)
        evaluation = pages_of(eval_banks, args.pages, 7, work / "eval")
        right_before, total = accuracy(before, evaluation)
        right_after, _ = accuracy(after, evaluation)
        print(f"evaluation: {len(evaluation)} pages, {total} fields of {len(WRITERS)} writers")
        print(f"fields read exactly: before {right_before}/{total} "
              f"({100 * right_before / total:.1f}%), after {right_after}/{total} "
              f"({100 * right_after / total:.1f}%)")  # fmt: skip
        print(f"{time.monotonic() - started:.0f}s in all")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
