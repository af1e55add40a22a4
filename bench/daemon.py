"""`ocrd watch` under a burst: throughput, drop-to-row latency, peak memory, duplicate skip path.

Starts the daemon as a subprocess (as systemd would), waits for READY=1, then drops a burst of
files into its inbox in one go (renames, like a scanner's upload). Files: MNIST t10k digits as
single-digit scans (evaluation data only) plus a share of small generated forms, all distinct.
When every file has its row, it prints files/s, pages/s, p50/p95/max latency from the drop to
the committed row, and the daemon's peak resident memory. Then it drops the very same files
again: all are recorded as duplicates without being read (the skip path).

    python -m bench.daemon                           # 10,000 files, SQLite
    python -m bench.daemon --files 1000 --forms 0.1  # quicker
    python -m bench.daemon --db postgresql://...     # an existing (empty or ocrd) database
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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from ocrd.store import Document, DocumentStatus, open_store

FINAL = (DocumentStatus.DONE, DocumentStatus.FAILED, DocumentStatus.DUPLICATE)


def make_files(folder: Path, count: int, form_share: float, seed: int) -> list[Path]:
    """`count` distinct files: forms (A5-ish, 150 dpi) and single MNIST t10k digits."""
    from training.forms import generate
    from training.readers import load_mnist

    folder.mkdir(parents=True, exist_ok=True)
    forms = round(count * form_share)
    files = []
    if forms:
        files += generate(
            folder / "forms", pages=forms, seed=seed, split="t10k", fmt="png", dpi=150,
            rows=3, size_inches=(6.0, 4.5), degradations=("clean", "rotate", "noise", "jpeg"),
        )  # fmt: skip
        for truth in (folder / "forms").glob("*.json"):
            truth.unlink()
    images, _ = load_mnist("t10k")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    for n in range(count - forms):
        digit = images[order[n % len(images)]]
        paper = 255 - np.pad(digit, 10)
        if n >= len(images):  # more files than MNIST digits: shift to keep contents distinct
            paper = np.roll(paper, n // len(images), axis=1)
        image = Image.fromarray(paper.astype(np.uint8)).resize((96, 96))
        path = folder / f"digit-{n:05d}.png"
        image.save(path)
        files.append(path)
    return files


class Notifications:
    def __init__(self, path: Path) -> None:
        self.ready = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                message = self.sock.recv(65536).decode()
            except OSError:
                return
            if "READY=1" in message.splitlines():
                self.ready.set()


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the process's peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds so far (user + system, with reaped children's) of the process and of its
    live descendants (the vision workers are children of the forkserver, the daemon's child)."""
    tick = os.sysconf("SC_CLK_TCK")

    def own(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return sum(int(value) for value in fields[11:15]) / tick  # own + reaped children's

    def children(p: int) -> list[int]:
        kids = []
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids += [int(k) for k in task.read_text().split()]
        return kids

    descendants, todo = [], children(pid)
    while todo:
        kid = todo.pop()
        descendants.append(kid)
        todo += children(kid)
    return own(pid), sum(own(kid) for kid in descendants)


def wait_rows(db_url: str, names: set[str], since_id: int, timeout: float) -> list[Document]:
    """Poll until every dropped name has a final row newer than `since_id`. The poll counts
    rows (cheap); the rows are loaded once at the end, so the poller takes little CPU from the
    daemon it measures."""
    store = open_store(db_url, upgrade=False)
    deadline = time.monotonic() + timeout
    final = [s.value for s in FINAL]
    newer = (Document.id > since_id, Document.status.in_(final))
    try:
        while True:
            with store.session() as session:
                count = session.scalar(select(func.count()).where(*newer)) or 0
                rows = (
                    session.scalars(select(Document).where(*newer)).all()
                    if (count >= len(names))
                    else []
                )
            done = {r.original_name for r in rows} & names
            print(f"\r  {min(count, len(names)):6d} / {len(names)} rows", end="", flush=True)
            if len(done) == len(names):
                print()
                return [r for r in rows if r.original_name in names]
            if time.monotonic() > deadline:
                raise SystemExit(f"\ntimed out with {count} of {len(names)} rows")
            time.sleep(0.5)
    finally:
        store.dispose()


def max_id(db_url: str) -> int:
    store = open_store(db_url)
    try:
        with store.session() as session:
            return session.scalar(select(func.max(Document.id))) or 0
    finally:
        store.dispose()


def drop(files: list[Path], inbox: Path) -> dict[str, float]:
    """Rename every file into the inbox; returns the wall-clock drop time per name."""
    dropped = {}
    for path in files:
        os.rename(path, inbox / path.name)
        dropped[path.name] = time.time()
    return dropped


def report(label: str, rows: list[Document], dropped: dict[str, float]) -> None:
    first_drop = min(dropped.values())
    finished = [r.finished_at.timestamp() for r in rows]
    elapsed = max(finished) - first_drop
    latency = np.array([r.finished_at.timestamp() - dropped[r.original_name] for r in rows])
    pages = sum(r.pages or 0 for r in rows if r.status == DocumentStatus.DONE)
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    print(f"{label}: {len(rows)} files in {elapsed:.1f} s  ({by_status})")
    print(f"  files/s           {len(rows) / elapsed:9.1f}")
    if pages:
        print(f"  pages/s           {pages / elapsed:9.1f}")
    p50, p95 = np.percentile(latency, [50, 95])
    print(f"  drop-to-row (s)   p50 {p50:.2f}  p95 {p95:.2f}  max {latency.max():.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--forms", type=float, default=0.05, help="share of files that are forms")
    parser.add_argument("--db", help="database URL (default: SQLite in the work folder)")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed after")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("watch_args", nargs="*", help="extra `ocrd watch` options (after --)")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ocrd-bench-"))
    root = work / "srv"
    for name in ("inbox", "processed", "failed"):
        (root / name).mkdir(parents=True, exist_ok=True)
    db_url = args.db or f"sqlite:///{work / 'bench.db'}"
    print(f"making {args.files} files ({args.forms:.0%} forms) in {work} ...")
    files = make_files(work / "staging", args.files, args.forms, args.seed)
    keep = work / "again"  # the same contents, for the duplicate run
    keep.mkdir(exist_ok=True)
    for path in files:
        os.link(path, keep / path.name)

    notify_path = work / "notify.sock"
    notifications = Notifications(notify_path)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    command = [sys.executable, "-m", "ocrd", "watch", str(root / "inbox"), "--db", db_url,
               *args.watch_args]  # fmt: skip
    log_path = work / "daemon.log"
    print(f"starting: {' '.join(command)}  (log: {log_path})")
    started = time.monotonic()
    with open(log_path, "w") as log:
        daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while not notifications.ready.wait(1):
            if daemon.poll() is not None:
                raise SystemExit(f"daemon exited early:\n{log_path.read_text()[-3000:]}")
        print(f"ready after {time.monotonic() - started:.1f} s (models loaded and warmed)")
        since = max_id(db_url)

        cpu_before = cpu_seconds(daemon.pid)
        dropped = drop(files, root / "inbox")
        rows = wait_rows(db_url, set(dropped), since, args.timeout)
        report("burst", rows, dropped)
        cpu_after = cpu_seconds(daemon.pid)
        main_cpu, workers_cpu = (b - a for a, b in zip(cpu_before, cpu_after, strict=True))
        print(
            f"  daemon CPU/file   {1000 * (main_cpu + workers_cpu) / len(rows):9.1f} ms"
            f"  (main process {1000 * main_cpu / len(rows):.1f} ms,"
            f" vision workers {1000 * workers_cpu / len(rows):.1f} ms)"
        )
        print(f"  daemon peak RSS   {peak_rss_mib(daemon.pid):9.0f} MiB")

        since = max_id(db_url)
        again = sorted(keep.iterdir())
        dropped = drop(again, root / "inbox")
        rows = wait_rows(db_url, set(dropped), since, args.timeout)
        report("same files again (duplicates, skipped)", rows, dropped)
        print(f"  daemon peak RSS   {peak_rss_mib(daemon.pid):9.0f} MiB")
        print(f"machine: {os.cpu_count()} CPU cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
