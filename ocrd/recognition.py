"""Recognition stage: the shipped Keras models behind a small batched inference API.

`load_recognizer()` loads `ocrd/models/*.keras` once per process, after checking each
file against the sha256 in `ocrd/models/manifest.json`. Inference runs through
`tf.function`s traced once (batch and width dimensions are dynamic in the signature),
with batches padded to a few fixed sizes and line widths to multiples of 32 so the
kernels see a handful of shapes. TensorFlow uses a GPU when it sees one, else the CPU.

TensorFlow is imported only when a recognizer loads, never at `import ocrd`, and its
start-up chatter is kept off the terminal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ocrd.normalize import DIGIT_SIZE, LINE_HEIGHT, MAX_LINE_WIDTH

MODELS_DIR = Path(__file__).resolve().parent / "models"
MANIFEST_FILE = "manifest.json"
NOT_A_DIGIT = 10  # the digit model's 11th class
CTC_BLANK = 10  # the line model's blank symbol (classes 0-9 are the digits)
LINE_CLASSES = 11  # per line-model member: digits 0-9 and the blank
LINE_DOWNSAMPLE = 4  # crop columns per output frame of the line model
BATCH_SIZES = (1, 8, 32, 256)
WIDTH_STEP = 32


def _manifest_threshold() -> float:
    try:
        manifest = json.loads((MODELS_DIR / MANIFEST_FILE).read_text())
        return float(manifest["models"]["digits"]["reject_threshold"])
    except (OSError, KeyError, ValueError, TypeError):
        return 0.5


# Digit predictions below this calibrated confidence (or won by the non-digit class)
# are not digits. Chosen at training time so ~0.2% of validation digits fall below it.
DIGIT_REJECT_THRESHOLD: float = _manifest_threshold()


class ModelIntegrityError(RuntimeError):
    """A shipped model file is missing or does not match its manifest entry."""


@dataclass(frozen=True)
class DigitPrediction:
    label: int
    confidence: float
    runner_up: int
    runner_up_confidence: float
    is_digit: bool


@dataclass(frozen=True)
class LinePrediction:
    text: str
    confidences: list[float]  # one per digit of text
    positions: list[float]  # x centre of each digit, in columns of the (32, W) line crop
    confidence: float  # whole string: product of the per-digit confidences


@contextlib.contextmanager
def stderr_silenced():
    """Send fd 2 to /dev/null: TensorFlow's C++ start-up logging ignores Python settings."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Import TensorFlow quietly (no C++ banners, absl or Python warnings on the terminal)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():
        import absl.logging
        import tensorflow as tf

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):  # already initialised
            tf.config.experimental.set_memory_growth(gpu, True)
    return tf


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks (manifest checks at load and at training)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(models_dir: Path) -> dict[str, Any]:
    path = models_dir / MANIFEST_FILE
    if not path.is_file():
        raise ModelIntegrityError(f"model manifest missing: {path}")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ModelIntegrityError(f"model manifest {path} is not valid JSON: {exc}") from exc


def verified_model_path(models_dir: Path, entry: dict[str, Any]) -> Path:
    """The entry's file, after checking it exists and its sha256 matches the manifest."""
    path = models_dir / entry["file"]
    if not path.is_file():
        raise ModelIntegrityError(f"model file missing: {path} (listed in {MANIFEST_FILE})")
    actual = file_sha256(path)
    if actual != entry["sha256"]:
        raise ModelIntegrityError(
            f"model file {path} does not match {MANIFEST_FILE}: sha256 {actual}, "
            f"expected {entry['sha256']} (corrupt or replaced; reinstall ocrd)"
        )
    return path


def choose_runtime() -> str:
    """ "litert" on CPU when the runtime is installed, "keras" on a GPU or when asked for it
    (OCRD_RUNTIME=keras); a LiteRT choice still falls back to Keras per model folder when
    the converted files are missing or stale (see `ocrd.litert.converted_entry`)."""
    from ocrd import litert

    wanted = os.environ.get("OCRD_RUNTIME", "auto").lower()
    if wanted == "keras" or (wanted == "auto" and litert.gpu_present()):
        return "keras"
    return "litert" if litert.available() else "keras"


def _numpy_out(fn: Any) -> Any:
    return lambda batch: fn(batch).numpy()


def _padded_size(count: int) -> int:
    for size in BATCH_SIZES:
        if count <= size:
            return size
    return BATCH_SIZES[-1]


def _bucket_width(width: int) -> int:
    return min(MAX_LINE_WIDTH, -(-width // WIDTH_STEP) * WIDTH_STEP)


def greedy_decode(probabilities: np.ndarray, frames: int) -> LinePrediction:
    """Best-path CTC decoding of one line: (T, 11) frame probabilities -> text, per-digit
    confidences (max probability over the frames of each emitted digit) and positions."""
    best = probabilities[:frames].argmax(axis=1)
    text, confidences, positions = [], [], []
    # Runs of one symbol, found in one numpy pass (a Python loop per frame cost ~2 ms a page).
    starts = np.flatnonzero(np.diff(best, prepend=-1)).tolist()
    for start, stop in zip(starts, [*starts[1:], len(best)], strict=False):
        symbol = int(best[start])
        if symbol != CTC_BLANK:
            run = probabilities[start:stop, symbol]
            text.append(str(symbol))
            confidences.append(float(run.max()))
            weights = run / run.sum()
            frame = float((np.arange(start, stop) * weights).sum())
            positions.append(frame * LINE_DOWNSAMPLE + LINE_DOWNSAMPLE / 2)
    confidence = (
        float(np.prod(confidences))
        if confidences
        else float(probabilities[:frames, CTC_BLANK].min(initial=1.0))
    )
    return LinePrediction("".join(text), confidences, positions, confidence)


def decode_members(probabilities: np.ndarray) -> LinePrediction:
    """One line's (T, 11 * k) output of a k-member line model (`training/ensemble.py`) ->
    the members' readings voting (`ocrd.line_votes.vote`): agreement keeps the confidence,
    disagreement shows in it. One member: its own reading."""
    members = probabilities.shape[1] // LINE_CLASSES
    frames = len(probabilities)
    readings = [
        greedy_decode(probabilities[:, m * LINE_CLASSES : (m + 1) * LINE_CLASSES], frames)
        for m in range(members)
    ]
    if members == 1:
        return readings[0]
    from ocrd.line_votes import vote  # line_votes imports this module

    return vote(readings, [LINE_DOWNSAMPLE * frames] * members)  # one width: no rescaling


class Recognizer:
    """Both models, loaded and verified; thread-safe for concurrent calls."""

    def __init__(self, models_dir: Path | None = None, runtime: str | None = None) -> None:
        self.models_dir = Path(models_dir) if models_dir else MODELS_DIR
        self.manifest = read_manifest(self.models_dir)
        entries = self.manifest.get("models", {})
        if "digits" not in entries:
            raise ModelIntegrityError(f"{self.models_dir / MANIFEST_FILE} lists no digits model")
        digit_path = verified_model_path(self.models_dir, entries["digits"])
        line_path = (
            verified_model_path(self.models_dir, entries["lines"]) if "lines" in entries else None
        )
        self.reject_threshold = float(
            entries["digits"].get("reject_threshold", DIGIT_REJECT_THRESHOLD)
        )
        self._paths = {"digits": digit_path, "lines": line_path}
        self._keras_models: dict[str, Any] = {}
        # tf.functions are thread-safe; the locks only keep one batch per model in flight so
        # concurrent callers queue instead of oversubscribing the CPU cores.
        self._digit_lock = threading.Lock()
        self._line_lock = threading.Lock()
        self.runtime = runtime or choose_runtime()
        lite = self._lite_paths() if self.runtime == "litert" else None
        if lite is not None:
            from ocrd.litert import LiteModel

            digits_lite = LiteModel(lite["digits"])
            self._digit_fn = digits_lite.run
            if line_path is not None:
                self._line_fn = LiteModel(lite["lines"]).run
            self._pad_batches = False  # no traced shapes to reuse: pad nothing
        else:
            self.runtime = "keras"
            self._load_keras()
            self._pad_batches = True

    def _lite_paths(self) -> dict[str, Path] | None:
        """Converted files for every shipped model, or None (then Keras reads)."""
        from ocrd import litert

        found = {}
        for key, path in self._paths.items():
            if path is None:
                continue
            entry = self.manifest["models"][key]
            converted = litert.converted_entry(self.models_dir, self.manifest, key, entry["sha256"])
            if converted is None:
                return None
            found[key] = converted
        return found

    def _load_keras(self) -> None:
        tf = import_tensorflow()

        digit_model = self._keras("digits")
        self._digit_fn = _numpy_out(
            tf.function(
                lambda x: digit_model(x, training=False),
                input_signature=[tf.TensorSpec([None, DIGIT_SIZE, DIGIT_SIZE, 1], tf.float32)],
            )
        )
        if self._paths["lines"] is not None:
            line_model = self._keras("lines")
            self._line_fn = _numpy_out(
                tf.function(
                    lambda x: line_model(x, training=False),
                    input_signature=[tf.TensorSpec([None, LINE_HEIGHT, None, 1], tf.float32)],
                )
            )

    def _keras(self, key: str) -> Any:
        """The Keras model (loaded on first use: the LiteRT runtime never needs it)."""
        if key not in self._keras_models:
            import_tensorflow()
            import keras

            self._keras_models[key] = keras.models.load_model(self._paths[key], compile=False)
        return self._keras_models[key]

    @property
    def model_name(self) -> str:
        entries = self.manifest["models"]
        names = [f"{entries[key]['name']}@{entries[key]['version']}"
                 for key in ("digits", "lines") if key in entries]  # fmt: skip
        return "+".join(names)

    @property
    def has_line_model(self) -> bool:
        return self._paths["lines"] is not None

    @property
    def digit_model(self):
        """The Keras digit model (for evaluation and export)."""
        return self._keras("digits")

    @property
    def line_model(self):
        """The Keras line model, or None when none is shipped."""
        return self._keras("lines") if self.has_line_model else None

    def _batch_size(self, count: int) -> int:
        # Keras: a few padded sizes, so tf.function meets a handful of shapes. LiteRT: exact.
        return _padded_size(count) if self._pad_batches else count

    # ------------------------------------------------------------------ digits

    def digit_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 11) calibrated probabilities."""
        batch = np.asarray(batch, np.float32)
        if batch.ndim == 2:
            batch = batch[None]
        if batch.ndim == 4 and batch.shape[-1] == 1:
            batch = batch[..., 0]
        if batch.ndim != 3 or batch.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
            raise ValueError(f"digit batch must be (N, 28, 28), got {batch.shape}")
        outputs = []
        for start in range(0, len(batch), BATCH_SIZES[-1]):
            chunk = batch[start : start + BATCH_SIZES[-1]]
            padded = np.zeros((self._batch_size(len(chunk)), DIGIT_SIZE, DIGIT_SIZE, 1), np.float32)
            padded[: len(chunk), ..., 0] = chunk
            with self._digit_lock:
                result = self._digit_fn(padded)
            outputs.append(result[: len(chunk)])
        if not outputs:
            return np.zeros((0, NOT_A_DIGIT + 1), np.float32)
        return np.concatenate(outputs)

    def recognize_digits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 28, 28) -> (labels int (N,), confidences float (N,)); best digit 0-9 each."""
        digit_probs = self.digit_probabilities(batch)[:, :NOT_A_DIGIT]
        return digit_probs.argmax(axis=1).astype(np.int64), digit_probs.max(axis=1)

    def read_digits(self, batch: np.ndarray) -> list[DigitPrediction]:
        probabilities = self.digit_probabilities(batch)
        predictions = []
        for row in probabilities:
            ranked = np.argsort(row[:NOT_A_DIGIT])[::-1]
            best, second = int(ranked[0]), int(ranked[1])
            is_digit = bool(row.argmax() != NOT_A_DIGIT and row[best] >= self.reject_threshold)
            predictions.append(
                DigitPrediction(best, float(row[best]), second, float(row[second]), is_digit)
            )
        return predictions

    # ------------------------------------------------------------------- lines

    def line_probabilities(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each (32, W) line -> its (frames, 11 * members) CTC probabilities, frames =
        ceil(W / 4) (`decode_members` splits them)."""
        if not self.has_line_model:
            raise ModelIntegrityError(f"no line model listed in {self.models_dir / MANIFEST_FILE}")
        lines = [np.asarray(line, np.float32) for line in batch]
        for line in lines:
            if line.ndim != 2 or line.shape[0] != LINE_HEIGHT:
                raise ValueError(f"line crops must be ({LINE_HEIGHT}, W), got {line.shape}")
        results: list[np.ndarray | None] = [None] * len(lines)
        by_width: dict[int, list[int]] = {}
        for index, line in enumerate(lines):
            by_width.setdefault(_bucket_width(line.shape[1]), []).append(index)
        for width, indices in sorted(by_width.items()):
            for start in range(0, len(indices), BATCH_SIZES[-1]):
                chunk = indices[start : start + BATCH_SIZES[-1]]
                padded = np.zeros((self._batch_size(len(chunk)), LINE_HEIGHT, width, 1), np.float32)
                for row, index in enumerate(chunk):
                    line = lines[index][:, :width]  # normalize_line never exceeds the max
                    padded[row, :, : line.shape[1], 0] = line
                with self._line_lock:
                    probabilities = self._line_fn(padded)
                for row, index in enumerate(chunk):
                    frames = min(
                        probabilities.shape[1], -(-lines[index].shape[1] // LINE_DOWNSAMPLE)
                    )
                    results[index] = probabilities[row, :frames]
        return results  # type: ignore[return-value]

    def read_lines(self, batch: Sequence[np.ndarray]) -> list[LinePrediction]:
        return [decode_members(p) for p in self.line_probabilities(batch)]

    def recognize_lines(self, batch: Sequence[np.ndarray]) -> tuple[list[str], list[list[float]]]:
        """(32, W) float32 lines -> (strings, per-digit confidences)."""
        predictions = self.read_lines(batch)
        return [p.text for p in predictions], [p.confidences for p in predictions]


_cache: dict[Path, Recognizer] = {}
_cache_lock = threading.Lock()


def load_recognizer(models_dir: Path | None = None) -> Recognizer:
    """The process-wide recognizer for `models_dir` (default: $OCRD_MODELS_DIR, a folder of
    candidate weights for benchmarks, else the shipped models)."""
    models_dir = models_dir or os.environ.get("OCRD_MODELS_DIR") or None
    key = Path(models_dir).resolve() if models_dir else MODELS_DIR
    with _cache_lock:
        if key not in _cache:
            _cache[key] = Recognizer(key)
        return _cache[key]


def recognize_digits(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return load_recognizer().recognize_digits(batch)


def recognize_lines(batch: Sequence[np.ndarray]) -> tuple[list[str], list[list[float]]]:
    return load_recognizer().recognize_lines(batch)
