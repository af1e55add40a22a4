"""Benchmark: `ocrd process` against the decoding floor and against Tesseract, in one run.

120 generated form pages (PNG, JPEG, TIFF at 200 and 300 dpi; t10k digits, evaluation data
only) are read four ways, one after the other on the same machine:

- decode only: every page decoded to grayscale (`ocrd.vision.iter_pages`), one process, and
  two processes (one per core) - the physical floor of what ocrd does;
- `ocrd process FOLDER` as a child process into a fresh SQLite file, start-up included; its
  CPU use is the child's user + system time over its wall time;
- Tesseract 5 (`--psm 11`, digits only) as two processes, one per core, if it is installed;
- `ocrd read` on one page and `ocrd watch` to READY=1 (start-up).

It prints pages/s for each and the ratios the speed issue asks for. With --pause-pid-file
the background training job is stopped (SIGSTOP) while measuring and always resumed.

    python -m bench.speed
    python -m bench.speed --pause-pid-file /work/train.pid
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FORMATS = ("png", "jpeg", "tiff")
DPIS = (200, 300)


def make_pages(folder: Path, pages: int, seed: int) -> list[Path]:
    """`pages` one-page files, spread evenly over FORMATS x DPIS (cached in `folder`)."""
    from training.forms import generate

    marker = folder / f".complete-{pages}-{seed}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        combos = [(fmt, dpi) for fmt in FORMATS for dpi in DPIS]
        for index, (fmt, dpi) in enumerate(combos):
            share = pages // len(combos) + (1 if index < pages % len(combos) else 0)
            sub = folder / f"{fmt}-{dpi}"
            generate(sub, pages=share, seed=seed + index, split="t10k", fmt=fmt, dpi=dpi)
            for truth in sub.glob("*.json"):
                truth.unlink()
        marker.touch()
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _decode(paths: list[Path]) -> int:
    from ocrd.vision import iter_pages

    return sum(1 for path in paths for _ in iter_pages(path))


def decode_rate(files: list[Path], processes: int) -> tuple[float, float]:
    """(pages/s, CPU seconds per page) of decoding alone, split over `processes` processes."""
    started, cpu_started = time.perf_counter(), _cpu_now()
    if processes == 1:
        pages = _decode(files)
    else:
        chunks = [files[i::processes] for i in range(processes)]
        with ProcessPoolExecutor(processes) as pool:
            pages = sum(pool.map(_decode, chunks))
    return pages / (time.perf_counter() - started), (_cpu_now() - cpu_started) / pages


def _cpu_now() -> float:
    own = os.times()
    return own.user + own.system + own.children_user + own.children_system


def _cpu_of_tree(root: int, seen: dict[int, float]) -> None:
    """Update `seen` (pid -> CPU seconds) for `root` and every descendant alive now; worker
    processes of a fork server are never waited for, so rusage would not count them."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree = {root}
    grown = True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grown = True
    for pid in tree:
        if pid in times:
            seen[pid] = max(seen.get(pid, 0.0), times[pid])


def run_child(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the child and all its descendants, exit status)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env or os.environ,
        cwd=cwd,
    )
    seen: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            _cpu_of_tree(child.pid, seen)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = child.stderr.read() if child.stderr else b""
    _cpu_of_tree(child.pid, seen)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    seen.pop(child.pid, None)  # its own total comes exactly from wait4
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{' '.join(command)} exited {code}: {stderr.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime + sum(seen.values()), code


def ocrd_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ocrd", *args]


def tesseract_rate(files: list[Path], processes: int) -> float | None:
    """Pages/s of Tesseract 5 (sparse text, digits only), one process per core."""
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one_core(chunk: list[Path]) -> None:
        for path in chunk:
            subprocess.run(
                [binary, str(path), "stdout", "--psm", "11", "-c",
                 "tessedit_char_whitelist=0123456789"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            )  # fmt: skip

    started = time.perf_counter()
    threads = [
        threading.Thread(target=one_core, args=(files[i::processes],)) for i in range(processes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(files) / (time.perf_counter() - started)


def watch_ready_seconds(work: Path, cwd: Path | None = None) -> float:
    """Seconds from starting `ocrd watch` to its READY=1 (systemd's notify protocol)."""
    inbox = work / "inbox"
    inbox.mkdir(exist_ok=True)
    sock_path = work / "notify.sock"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    database = f"sqlite:///{work / 'watch.db'}"
    command = ocrd_command("watch", str(inbox), "--db", database)
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    try:
        while b"READY=1" not in sock.recv(65536):
            pass
        return time.perf_counter() - started
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
        sock.close()


def measure_ocrd(pages: Path, count: int, one_page: Path, work: Path, cwd: Path | None) -> dict:
    """`ocrd process` pages/s and CPU %, `ocrd read` on one page, `ocrd watch` to READY=1,
    for the ocrd in `cwd` (default: this checkout)."""
    work.mkdir(parents=True, exist_ok=True)
    database = f"sqlite:///{work / 'process.db'}"
    wall, cpu, _ = run_child(ocrd_command("process", str(pages), "--db", database), cwd=cwd)
    read_wall, _, _ = run_child(ocrd_command("read", str(one_page)), cwd=cwd)
    return {
        "rate": count / wall,
        "wall": wall,
        "cpu": 100 * cpu / wall,
        "cpu_per_page": cpu / count,
        "read": read_wall,
        "ready": watch_ready_seconds(work, cwd),
    }


def report_ocrd(label: str, m: dict, cores: int) -> None:
    print(
        f"{label}: ocrd process {m['rate']:5.1f} pages/s ({m['wall']:.1f} s wall, start-up "
        f"incl., CPU {m['cpu']:.0f}% of {100 * cores}%, {1000 * m['cpu_per_page']:.0f} ms CPU "
        f"per page); ocrd read one page {m['read']:.2f} s; ocrd watch READY=1 {m['ready']:.2f} s"
    )


def _descendants(root: int) -> list[int]:
    """Processes started by `root`, and by those, from /proc (a pid file often names a shell
    wrapper: stopping only the shell leaves the job running)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@contextlib.contextmanager
def paused(pid_file: Path | None) -> Iterator[None]:
    """SIGSTOP the processes in `pid_file` while measuring; SIGCONT them whatever happens."""
    text = pid_file.read_text() if pid_file and pid_file.exists() else ""
    pids = [int(word) for word in text.split() if word.isdigit()]
    pids += [child for pid in pids for child in _descendants(pid)]  # a wrapper's workers too
    stopped = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        if stopped:
            print(f"paused pid {' '.join(map(str, stopped))} while measuring")
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if stopped:
            print(f"resumed pid {' '.join(map(str, stopped))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ocrd-speed")
    parser.add_argument("--no-tesseract", action="store_true")
    parser.add_argument("--pause-pid-file", type=Path, default=None)
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another ocrd checkout (e.g. `git archive` of an older commit) measured in the "
        "same run, for before/after figures",
    )
    args = parser.parse_args(argv)
    pages = args.cache / "pages"
    files = make_pages(pages, args.pages, args.seed)
    cores = os.cpu_count() or 1
    one_page = next(p for p in files if p.suffix == ".png")
    print(f"{len(files)} pages ({', '.join(FORMATS)} at {', '.join(map(str, DPIS))} dpi), "
          f"{cores} cores")  # fmt: skip
    with paused(args.pause_pid_file), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        decode_1, decode_cpu = decode_rate(files, 1)
        decode_n, _ = decode_rate(files, cores)
        print(f"decode only: {decode_1:.1f} pages/s (1 process), {decode_n:.1f} pages/s "
              f"({cores} processes); CPU {1000 * decode_cpu:.0f} ms per page")  # fmt: skip
        before = None
        if args.before is not None:
            before = measure_ocrd(pages, len(files), one_page, work / "before", args.before)
            report_ocrd("before", before, cores)
        after = measure_ocrd(pages, len(files), one_page, work / "after", None)
        report_ocrd("this checkout", after, cores)
        tess = None if args.no_tesseract else tesseract_rate(files, cores)
        if tess is not None:
            print(f"tesseract 5 --psm 11 digits, {cores} processes: {tess:.2f} pages/s")
    for label, m in (("before", before), ("this checkout", after)):
        if m is None:
            continue
        ratios = [f"{m['rate'] / decode_1:.2f} of decode (1 process)",
                  f"{m['rate'] / decode_n:.2f} of decode ({cores} processes)"]  # fmt: skip
        if tess is not None:
            ratios.append(f"{m['rate'] / tess:.1f}x tesseract")
        print(f"{label}: ocrd process = " + ", ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
