"""The pipeline engine: the same readings as the synchronous pipeline, in order, bounded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from ocrd.config import load_settings
from ocrd.engine import Engine, InOrder, in_order
from ocrd.types import BadInputError


def test_in_order_keeps_the_given_order_and_a_bounded_window():
    in_flight, most = 0, 0
    lock = threading.Lock()
    pool = ThreadPoolExecutor(8)

    def slow(path: Path) -> str:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.05 if int(path.name) % 2 else 0.001)  # odd ones finish last
        with lock:
            in_flight -= 1
        return path.name

    def submit(path: Path) -> Future:
        return pool.submit(slow, path)

    items = [(n, None if n % 5 == 0 else Path(str(n))) for n in range(30)]
    out = list(in_order(items, submit, window=4))
    assert [key for key, _ in out] == list(range(30))
    assert all(f is None for k, f in out if k % 5 == 0)
    assert [f.result() for k, f in out if f is not None] == [str(n) for n in range(30) if n % 5]
    assert most <= 5  # the window, plus the one just submitted before the head is taken
    pool.shutdown()


def test_in_order_says_whether_the_next_outcome_is_there():
    # `ocrd process` commits readings in groups while the next one is ready, never while one
    # is awaited: next_ready must say False for an unfinished head and for an empty queue.
    futures = {name: Future() for name in "abc"}
    futures["b"].set_result("b")
    threading.Timer(0.2, futures["a"].set_result, ["a"]).start()  # a, the head, finishes last
    ordered = InOrder([(k, Path(k)) for k in "abc"], lambda p: futures[p.name], window=2)
    outcomes = iter(ordered)
    assert next(outcomes)[0] == "a"  # waited for: b and c were submitted meanwhile
    assert ordered.next_ready()  # b is done
    assert next(outcomes)[0] == "b"
    assert not ordered.next_ready()  # c is still being read
    futures["c"].set_result("c")
    assert ordered.next_ready()
    assert next(outcomes)[0] == "c"
    assert not ordered.next_ready()  # nothing left


def test_in_order_submits_nothing_when_nothing_needs_reading():
    def submit(path: Path) -> Future:
        raise AssertionError("no path, no submit (models would load for nothing)")

    assert [k for k, _ in in_order([(1, None), (2, None)], submit, window=2)] == [1, 2]


@pytest.fixture(scope="module")
def form_files(tmp_path_factory) -> list[Path]:
    from training.forms import generate

    folder = tmp_path_factory.mktemp("engine")
    try:
        files = generate(folder, pages=3, seed=77, split="t10k", fmt="png", dpi=200)
        files += generate(folder / "tif", pages=2, seed=78, split="t10k", fmt="tiff", dpi=200,
                          pages_per_file=2)  # fmt: skip
    except ValueError:
        pytest.skip("MNIST not available")
    bad = folder / "notes.png"
    bad.write_text("not an image at all")
    return [*files[:2], bad, *files[2:]]


def test_engine_reads_what_the_synchronous_pipeline_reads(form_files):
    from ocrd.pipeline import read_document
    from ocrd.recognition import load_recognizer

    recognizer = load_recognizer()
    settings = load_settings({"workers": 2})
    with Engine(recognizer, settings) as engine:
        engine.warm_up()
        outcomes = list(engine.read_all((path, path) for path in form_files))
    assert [path for path, _ in outcomes] == form_files
    for path, future in outcomes:
        if path.name == "notes.png":
            with pytest.raises(BadInputError, match="not an image"):
                future.result()
            continue
        got, want = future.result(), read_document(path, recognizer)
        assert (got.media_type, got.pages) == (want.media_type, want.pages)
        assert [(r.page, r.box, r.text) for r in got.fields] == [
            (r.page, r.box, r.text) for r in want.fields
        ]
        assert got.fields, f"{path.name}: nothing read"
    assert engine.digits.stats.items > 0 and engine.digits.stats.batches < engine.digits.stats.items


def test_a_lone_file_does_not_wait_out_the_batch_delays(form_files):
    """With no other file being decoded, the engine runs its batches at once: a one-hour
    batching delay does not hold up a single file."""
    import time

    from ocrd.recognition import load_recognizer

    settings = load_settings({"workers": 1, "max_delay_ms": 3_600_000})
    with Engine(load_recognizer(), settings) as engine:
        assert engine.lines.max_delay > engine.digits.max_delay  # lines wait for more pages
        started = time.monotonic()
        reading = engine.read(form_files[0])
        assert time.monotonic() - started < 60
    assert reading.fields


def test_engine_admits_documents_against_its_memory_budget(form_files):
    """Each document holds its largest page's estimated bytes while a worker decodes it: with a
    budget smaller than any page, two workers still decode only one document at a time."""
    from ocrd.budget import MemoryBudget
    from ocrd.recognition import load_recognizer
    from ocrd.vision.loading import estimate_peak_bytes

    settings = load_settings({"workers": 2})
    readable = [p for p in form_files if p.name != "notes.png"]
    assert all(estimate_peak_bytes(p, settings.max_pixels) > 100 for p in readable)
    budget = MemoryBudget(100)
    with Engine(load_recognizer(), settings, budget=budget) as engine:
        outcomes = list(engine.read_all((path, path) for path in readable))
    assert all(future.result().fields for _, future in outcomes)
    assert budget.peak == 100 and budget.used == 0  # one at a time, all released


ENGINE_THEN_SLEEP = """
import time
from ocrd.config import load_settings
from ocrd.engine import Engine
from ocrd.recognition import load_recognizer

if __name__ == "__main__":
    engine = Engine(load_recognizer(), load_settings({"workers": 2}))
    engine.warm_up()
    print(*engine._pool._processes, flush=True)
    time.sleep(600)
"""


def test_vision_workers_exit_when_the_engine_process_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "engine_then_sleep.py"
    script.write_text(ENGINE_THEN_SLEEP)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in child.stdout.readline().split()]
    assert len(workers) == 2 and all(Path(f"/proc/{pid}").exists() for pid in workers)
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "vision workers outlived a killed engine"
