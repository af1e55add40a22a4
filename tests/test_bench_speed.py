"""bench.speed's pause: a pid file naming a shell wrapper pauses the job the shell started."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.speed import _descendants, paused


def _stopped(pid: int) -> bool:
    """Whether `pid` is stopped, allowing a signal a moment to be delivered."""
    state = ""
    for _ in range(3):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        time.sleep(0.05)
    return state == "T"


def test_pausing_a_wrapper_pauses_its_children_and_resumes_them(tmp_path: Path) -> None:
    wrapper = subprocess.Popen(["bash", "-c", "sleep 30 & wait"])
    try:
        for _ in range(50):
            children = _descendants(wrapper.pid)
            if children:
                break
            time.sleep(0.05)
        assert len(children) == 1
        pid_file = tmp_path / "job.pid"
        pid_file.write_text(f"{wrapper.pid}\n")
        with paused(pid_file):
            assert _stopped(wrapper.pid) and _stopped(children[0])
        assert not _stopped(wrapper.pid) and not _stopped(children[0])
    finally:
        subprocess.run(["kill", "--", *map(str, [*_descendants(wrapper.pid), wrapper.pid])])
        wrapper.wait(timeout=5)
