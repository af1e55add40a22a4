"""Bad days for `ocrd watch`: the daemon's peak memory under huge pages, and its log volume
through a PostgreSQL outage.

memory   Starts the daemon (SQLite), then drops together three 14000 x 14000 deflate TIFFs
         (196 Mpx each, under the 200 Mpx limit, no resolution tag) and a 500-page PDF of
         small forms. Prints the resident memory of the daemon and its vision worker
         processes together (sampled every 0.2 s) when ready and at its peak, the daemon's
         own peak (VmHWM), and how long the four took.
outage   Starts a throwaway PostgreSQL server (the test suite's) and the daemon on it, stops
         the server for `--outage` seconds (a form is dropped meanwhile), starts it again and
         prints the number of log lines (and tracebacks) the outage produced, and how long after
         the server was back the form dropped during it was done.

    python -m bench.hostile                 # both
    python -m bench.hostile memory
    python -m bench.hostile outage --outage 21
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from ocrd.store import Document, DocumentStatus, open_store

FINAL = (DocumentStatus.DONE, DocumentStatus.FAILED, DocumentStatus.DUPLICATE)
SIDE = 14000


class Daemon:
    def __init__(self, root: Path, db_url: str) -> None:
        self.root, self.db_url = root, db_url
        self.inbox = root / "inbox"
        for name in ("inbox", "processed", "failed"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self.log_path = root / "daemon.log"
        command = [
            sys.executable, "-m", "ocrd", "watch", str(self.inbox), "--db", db_url,
            "--settle-seconds", "0.5", "--rescan-seconds", "5",
        ]  # fmt: skip
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + 300
        while "watching " not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon did not start:\n{self.log_path.read_text()}")
            time.sleep(0.5)

    def memory_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def tree_rss_kib(self) -> int:
        """Resident memory of the daemon and every process below it (fork server, workers)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[-1].split()[1])
        tree, grew = {self.process.pid}, True
        while grew:
            below = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree |= below
            grew = bool(below)
        total = 0
        for pid in tree:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            total += next((int(ln.split()[1]) for ln in status.splitlines()
                           if ln.startswith("VmRSS:")), 0)  # fmt: skip
        return total

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def finished(self, names: list[str]) -> dict[str, str] | None:
        store = open_store(self.db_url, upgrade=False)
        try:
            with store.session(write=False) as session:
                rows = session.query(Document.original_name, Document.status, Document.error)
                found = {name: (status, error) for name, status, error in rows}
        finally:
            store.dispose()
        if all(n in found and found[n][0] in FINAL for n in names):
            return {n: f"{found[n][0]} {found[n][1] or ''}".strip() for n in names}
        return None

    def wait(self, names: list[str], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while (outcome := self.finished(names)) is None:
            if time.monotonic() > deadline:
                tail = self.log_path.read_text()[-3000:]
                raise SystemExit(f"not finished in {timeout} s:\n{tail}")
            time.sleep(0.5)
        return outcome

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self._log.close()


def drop(source: Path, inbox: Path) -> None:
    temp = inbox / (source.name + ".part")
    shutil.copyfile(source, temp)
    os.replace(temp, inbox / source.name)


def make_memory_files(folder: Path) -> list[Path]:
    from training.forms import generate

    form = generate(folder / "form", pages=1, seed=7, split="t10k", fmt="png", dpi=150, rows=3,
                    size_inches=(6.0, 4.5))[0]  # fmt: skip
    page = Image.new("L", (SIDE, SIDE), 255)
    for x in range(0, SIDE - 1000, 3000):
        page.paste(Image.open(form).convert("L"), (x, x))
    base = folder / "base.tif"
    page.save(base, compression="tiff_adobe_deflate")
    del page
    files = []
    for n in range(3):  # distinct content (a trailing byte), or two would be duplicates
        path = folder / f"huge-{n}.tif"
        path.write_bytes(base.read_bytes() + bytes([n]))
        files.append(path)
    form_page = Image.open(form).convert("L")
    pdf = folder / "pages-500.pdf"
    form_page.save(pdf, save_all=True, append_images=[form_page] * 499, resolution=150)
    return [*files, pdf]


def bench_memory(work: Path) -> None:
    files = make_memory_files(work / "files")
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in files)
    daemon = Daemon(work / "memory", f"sqlite:///{work / 'memory.db'}")
    try:
        ready_rss = daemon.tree_rss_kib()
        samples, done = [ready_rss], threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                samples.append(daemon.tree_rss_kib())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        for path in files:
            drop(path, daemon.inbox)
        outcome = daemon.wait([p.name for p in files], timeout=1800)
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
        own_peak = daemon.memory_kib("VmHWM")
    finally:
        daemon.stop()
    peak = max(samples)
    print(f"memory: dropped together {sizes}")
    for name, result in outcome.items():
        print(f"  {name}: {result}")
    print(f"  RSS of the daemon + vision workers when ready {ready_rss / 1024:.0f} MiB, peak "
          f"{peak / 1024:.0f} MiB (target < 1536 MiB); the daemon process alone peaked at "
          f"{own_peak / 1024:.0f} MiB; all finished in {seconds:.0f} s")  # fmt: skip


def bench_outage(work: Path, outage: float) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import PostgresServer, find_postgres_bin
    from training.forms import generate

    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise SystemExit("outage: PostgreSQL binaries not installed")
    server = PostgresServer(bin_dir)
    server.start()
    forms = generate(work / "forms", pages=2, seed=8, split="t10k", fmt="png", dpi=150, rows=3,
                     size_inches=(6.0, 4.5))  # fmt: skip
    try:
        time.sleep(1)
        url = server.create_database("bench")
        daemon = Daemon(work / "outage", url)
        try:
            before = len(daemon.log_lines())
            server.pause()
            stopped = time.monotonic()
            time.sleep(1)
            drop(forms[0], daemon.inbox)
            time.sleep(max(0.0, outage - (time.monotonic() - stopped)))
            server.resume()
            back = time.monotonic()
            daemon.wait([forms[0].name], timeout=120)
            recovered = time.monotonic() - back
            drop(forms[1], daemon.inbox)
            daemon.wait([forms[1].name], timeout=60)
            during = daemon.log_lines()[before:]
        finally:
            daemon.stop()
    finally:
        server.stop()
    tracebacks = sum("Traceback" in line for line in during)
    print(f"outage: PostgreSQL stopped for {outage:.0f} s under a running daemon")
    print(f"  log lines from the outage until the next form was done: {len(during)} "
          f"({tracebacks} tracebacks)")  # fmt: skip
    for line in during:
        print(f"    {line[:160]}")
    print(
        f"  the form dropped during the outage was done {recovered:.1f} s after the server was back"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", choices=("memory", "outage", "both"), default="both")
    parser.add_argument("--outage", type=float, default=21.0, help="seconds the server is down")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ocrd-hostile-"))
    try:
        if args.case in ("memory", "both"):
            bench_memory(work)
        if args.case in ("outage", "both"):
            bench_outage(work, args.outage)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
