"""LiteRT (TensorFlow Lite, XNNPACK on CPU) runners for the converted models.

The `.keras` files stay the source of truth; `python -m training export --litert` converts them
to `.tflite` files listed in the manifest's "litert" section with their own sha256 and the
sha256 of the Keras file they came from. `converted_entry` accepts a converted file only when
that recorded source is the very Keras file shipped beside it, so new Keras weights without a
fresh conversion fall back to Keras instead of reading with stale weights.

On CPU this runtime reads the same labels as Keras (float32 weights; a test checks a fixed
set) in a fraction of the time, and it imports in ~0.2 s where TensorFlow takes seconds.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SECTION = "litert"


def available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def gpu_present() -> bool:
    """An NVIDIA device node without importing TensorFlow (a GPU keeps batched TensorFlow)."""
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def converted_entry(
    models_dir: Path, manifest: dict[str, Any], key: str, source_sha256: str
) -> Path | None:
    """The converted file for `key` if it is there, intact and made from `source_sha256`."""
    from ocrd.recognition import file_sha256

    entry = manifest.get(SECTION, {}).get(key)
    if not entry:
        return None
    if entry.get("source_sha256") != source_sha256:
        log.warning(
            "%s: converted from other Keras weights than the shipped %s; using Keras "
            "(re-run `python -m training export --litert`)",
            entry.get("file"),
            key,
        )
        return None
    path = models_dir / entry["file"]
    if not path.is_file() or file_sha256(path) != entry.get("sha256"):
        log.warning("%s missing or not matching the manifest; using Keras", path)
        return None
    return path


def batch_signature(size: int) -> str:
    """Name of the signature converted for a static batch of `size` (the line model)."""
    return f"batch_{size}"


def batch_plan(count: int, sizes: tuple[int, ...]) -> list[int]:
    """The converted batch sizes that run `count` rows: the largest that fits, again and
    again, except that a remainder is padded up to the next size when that wastes at most a
    quarter of that call (one call of 8 for 7 rows beats calls of 4, 2 and 1)."""
    plan, left = [], count
    while left > 0:
        up = next((size for size in sizes if size >= left), None)
        if up is not None and up * 3 <= left * 4:
            plan.append(up)
            break
        size = max((size for size in sizes if size <= left), default=sizes[0])
        plan.append(size)
        left -= size
    return plan


class LiteModel:
    """One converted model; `run` takes a float32 batch and returns the output batch.

    The interpreter is not thread-safe, hence the lock. A model with one signature per static
    batch size (the line model: its GRU needs a static state shape) runs a batch as a few
    calls of those sizes, the last one padded (`batch_plan`); a model with one signature
    takes any batch (or, converted with a fixed batch of 1, is run row by row)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from ocrd.recognition import stderr_silenced

        threads = threads or int(os.environ.get("OCRD_INFERENCE_THREADS", "1"))
        self.path = path
        with stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate" (C++)
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        self._runners = self._batch_runners()
        self.batch_sizes = tuple(sorted(self._runners))
        detail = self._interpreter.get_input_details()[0]
        self._input = detail["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.fixed_batch = not self._runners and int(detail["shape_signature"][0]) == 1
        self._shape: tuple[int, ...] | None = None
        self._lock = threading.Lock()

    def _batch_runners(self) -> dict[int, tuple[Any, str, str]]:
        """Batch size -> (signature runner, input name, output name) for `batch_<n>` ones."""
        runners = {}
        for key, io in self._interpreter.get_signature_list().items():
            prefix, _, size = key.partition("_")
            if prefix == "batch" and size.isdigit():
                runner = self._interpreter.get_signature_runner(key)
                runners[int(size)] = (runner, io["inputs"][0], io["outputs"][0])
        return runners

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        if self._runners:
            return self._run_planned(batch)
        if self.fixed_batch and len(batch) != 1:
            return np.concatenate([self.run(batch[i : i + 1]) for i in range(len(batch))])
        with self._lock:
            if batch.shape != self._shape:  # re-plan only when the shape changes
                self._interpreter.resize_tensor_input(self._input, batch.shape, strict=False)
                self._interpreter.allocate_tensors()
                self._shape = batch.shape
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()

    def _run_planned(self, batch: np.ndarray) -> np.ndarray:
        outputs, start = [], 0
        for size in batch_plan(len(batch), self.batch_sizes):
            chunk = batch[start : start + size]
            if len(chunk) < size:  # the padded rows are computed and dropped
                padding = np.zeros((size - len(chunk), *batch.shape[1:]), np.float32)
                chunk = np.concatenate([chunk, padding])
            runner, name, output = self._runners[size]
            with self._lock:
                result = runner(**{name: chunk})[output]
            outputs.append(result[: min(size, len(batch) - start)])
            start += size
        return np.concatenate(outputs)
