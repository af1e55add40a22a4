"""The cross-file batcher with plain functions: sizes, delays, routing, poison isolation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ocrd.batching import Batcher


def squares(batch: list[int]) -> list[int]:
    return [x * x for x in batch]


def test_results_are_routed_to_their_own_futures() -> None:
    with Batcher(squares, max_batch=7, max_delay=0.01) as batcher:
        futures = batcher.submit_many(list(range(100)))
        assert [f.result(timeout=5) for f in futures] == [x * x for x in range(100)]
    assert batcher.stats.items == 100
    assert max(batcher.stats.sizes) <= 7


def test_full_batch_runs_without_waiting_for_the_delay() -> None:
    sizes: list[int] = []
    release = threading.Event()

    def record(batch: list[int]) -> list[int]:
        sizes.append(len(batch))
        release.wait(5)
        return batch

    # A one-hour delay: only reaching max_batch can trigger the call.
    batcher = Batcher(record, max_batch=4, max_delay=3600)
    futures = batcher.submit_many([1, 2, 3, 4])
    release.set()
    assert [f.result(timeout=5) for f in futures] == [1, 2, 3, 4]
    assert sizes == [4]
    batcher.close(timeout=0)


def test_lone_item_runs_after_max_delay() -> None:
    with Batcher(squares, max_batch=1000, max_delay=0.05) as batcher:
        assert batcher.submit(3).result(timeout=5) == 9
        assert batcher.stats.sizes == [1]


def test_items_from_many_threads_share_batches() -> None:
    gate = threading.Event()

    def slow_first(batch: list[int]) -> list[int]:
        gate.wait(5)  # hold the first call so the rest pile up behind it
        return batch

    with (
        Batcher(slow_first, max_batch=64, max_delay=0.01) as batcher,
        ThreadPoolExecutor(8) as pool,
    ):
        futures = [
            f for fs in pool.map(batcher.submit_many, [[i] * 8 for i in range(8)]) for f in fs
        ]
        gate.set()
        assert sorted(f.result(timeout=5) for f in futures) == sorted(
            i for i in range(8) for _ in range(8)
        )
    assert batcher.stats.items == 64
    assert batcher.stats.batches < 64


def test_poisonous_item_fails_alone() -> None:
    def picky(batch: list[int]) -> list[int]:
        if 13 in batch:
            raise ValueError("unlucky input")
        return [x + 1 for x in batch]

    with Batcher(picky, max_batch=32, max_delay=0.05) as batcher:
        futures = batcher.submit_many(list(range(20)))
        for x, future in enumerate(futures):
            if x == 13:
                with pytest.raises(ValueError, match="unlucky"):
                    future.result(timeout=5)
            else:
                assert future.result(timeout=5) == x + 1
    assert batcher.stats.failures == 1


def test_wrong_result_count_is_an_error_not_a_misroute() -> None:
    with Batcher(lambda batch: batch[:1], max_batch=8, max_delay=0.05) as batcher:
        futures = batcher.submit_many([10, 20, 30])
        # retried singly, each call returns exactly one result again
        assert [f.result(timeout=5) for f in futures] == [10, 20, 30]


def test_queue_is_bounded_so_submitters_wait() -> None:
    gate = threading.Event()
    with Batcher(lambda b: (gate.wait(5), b)[1], max_batch=2, max_delay=0, max_queued=3) as batcher:
        batcher.submit(0)  # taken by the worker thread, which then blocks in predict
        done = threading.Event()

        def flood() -> None:
            for i in range(10):
                batcher.submit(i)
            done.set()

        threading.Thread(target=flood, daemon=True).start()
        assert not done.wait(0.3)
        assert batcher.queued <= 3
        gate.set()
        assert done.wait(5)


def test_close_finishes_queued_work_and_refuses_more() -> None:
    batcher = Batcher(squares, max_batch=4, max_delay=10)
    futures = batcher.submit_many([1, 2, 3])
    batcher.close(timeout=5)
    assert [f.result(timeout=0) for f in futures] == [1, 4, 9]
    with pytest.raises(RuntimeError):
        batcher.submit(5)


def test_flush_runs_a_lone_item_without_waiting_out_the_delay() -> None:
    with Batcher(squares, max_batch=64, max_delay=3600) as batcher:
        future = batcher.submit(3)
        batcher.flush()
        assert future.result(timeout=5) == 9
        batcher.flush()  # with nothing queued: a no-op, the batcher keeps working
        later = batcher.submit_many([1, 2])
        batcher.flush()
        assert [f.result(timeout=5) for f in later] == [1, 4]
    assert batcher.stats.batches == 2
