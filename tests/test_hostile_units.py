"""The parts behind the hostile-inbox behaviour, on their own: the memory budget, reduced
decoding of huge pages, name fitting and escaping, the temp-file sweep, the outage reporter."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrd.budget import MemoryBudget
from ocrd.intake import NAME_MAX, candidate_names, fit_name, sweep_stale_temp_files, utf8_name
from ocrd.logsafe import printable
from ocrd.service.outage import DatabaseHealth
from ocrd.types import Box, Field
from ocrd.vision.loading import (
    DEFAULT_MAX_PIXELS,
    REDUCE_ABOVE_PIXELS,
    estimate_peak_bytes,
    iter_pages,
    to_file_coordinates,
)


def test_budget_makes_a_second_page_wait_until_the_first_is_released() -> None:
    budget = MemoryBudget(100)
    order = []
    with budget.hold(80):
        thread = threading.Thread(target=lambda: budget.hold(50).__enter__() or order.append(2))
        thread.start()
        time.sleep(0.2)
        order.append(1)
        assert budget.waiting == 1
    thread.join(2)
    assert order == [1, 2]


def test_a_page_bigger_than_the_budget_still_runs_alone() -> None:
    budget = MemoryBudget(100)
    with budget.hold(10_000):
        assert budget.used == 100


def test_huge_page_is_reduced_while_decoding_and_boxes_map_back(tmp_path: Path) -> None:
    side = 2 * int((REDUCE_ABOVE_PIXELS * 1.5) ** 0.5 / 2)  # even: reduced exactly 2x
    image = np.full((side, side), 255, np.uint8)
    image[1000:1100, 2000:2300] = 0
    path = tmp_path / "big.tif"
    Image.fromarray(image).save(path, compression="tiff_adobe_deflate", dpi=(600, 600))
    seen = []

    def admit(nbytes: int):  # noqa: ANN202
        seen.append(nbytes)
        return MemoryBudget(1 << 40).hold(nbytes)

    (page,) = iter_pages(path, admit=admit)
    assert page.reduced == 2.0 and page.image.shape == (side // 2, side // 2)
    assert page.dpi == 300 and seen and seen[0] < side * side * 2
    # What the engine holds on its budget before a worker decodes the file: the same cost.
    assert estimate_peak_bytes(path, DEFAULT_MAX_PIXELS) == seen[0]
    ys, xs = np.nonzero(page.image < 128)
    assert (ys.min(), xs.min()) == (500, 1000)
    field = Field(page=1, box=Box(1000, 500, 150, 50), kind="printed", layout="free",
                  line_crop=None, digit_boxes=[Box(1000, 500, 10, 50)])  # fmt: skip
    (mapped,) = to_file_coordinates([field], page)
    assert mapped.box == Box(2000, 1000, 300, 100) and mapped.digit_boxes == [
        Box(2000, 1000, 20, 100)
    ]


def test_names_are_fitted_to_the_file_system_limit() -> None:
    long = "ä" * 130 + ".png"  # 264 bytes
    fitted = fit_name(long)
    assert len(os.fsencode(fitted)) <= NAME_MAX and fitted.endswith(".png")
    fitted.encode("utf-8")  # never cut inside a character
    names = candidate_names("x" * 251 + ".png", reserve=len(".error.txt"))
    for name in [next(names) for _ in range(3)]:
        assert len(os.fsencode(name)) + len(".error.txt") <= NAME_MAX
    assert name.endswith(" (2).png")


def test_undecodable_bytes_and_control_characters_are_escaped() -> None:
    raw = os.fsdecode(b"bad\xffutf8.png")
    assert utf8_name(raw) == "bad%FFutf8.png"
    assert printable(raw) == "bad\\xffutf8.png"
    assert printable("evil\n<2>x\x1b[31m") == "evil\\n<2>x\\x1b[31m"


def test_sweep_removes_stale_temp_copies_only(tmp_path: Path) -> None:
    old = time.time() - 3600
    dead = tmp_path / "2026" / ".ocrd-999999999-1.part"
    dead.parent.mkdir()
    dead.write_bytes(b"x")
    os.utime(dead, (old, old))
    mine = tmp_path / f".ocrd-{os.getpid()}-1.part"  # a live process's copy: kept
    mine.write_bytes(b"x")
    os.utime(mine, (old, old))
    fresh = tmp_path / ".ocrd-999999999-2.part"  # just written: kept
    fresh.write_bytes(b"x")
    assert sweep_stale_temp_files([tmp_path]) == 1
    assert not dead.exists() and mine.exists() and fresh.exists()


def test_outage_is_one_warning_with_back_off_and_one_line_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sqlalchemy.exc import OperationalError

    now = [0.0]
    health = DatabaseHealth(clock=lambda: now[0])
    down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    with caplog.at_level(logging.INFO, logger="ocrd.service"):
        for _ in range(50):
            if health.available():
                health.failed("claiming documents", down)
            now[0] += 0.25
        assert not health.available() or health.down
        now[0] += 60
        health.ok()
        health.ok()
        for _ in range(5):
            health.error("moving x", ValueError("boom"))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unavailable" in m for m in messages) == 1
    assert sum("database is back" in m for m in messages) == 1
    assert sum(r.exc_info is not None for r in caplog.records if r.levelno >= logging.INFO) == 1
    assert len(messages) == 4  # then "failed again" at most once a minute
