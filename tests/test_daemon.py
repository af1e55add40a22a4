"""The daemon: claims on SQLite and PostgreSQL, then `ocrd watch` as a real subprocess with
the real pipeline and models: mixed drop, kill -9 mid-burst, three daemons on one inbox."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from ocrd.store import Document, DocumentStatus, documents
from ocrd.store.claims import (
    claim_documents,
    heartbeat,
    release_claims,
    release_dead_claims,
)

# --- claims -------------------------------------------------------------------------------------


def register_files(store, folder: Path, count: int) -> list[int]:  # noqa: ANN001
    ids = []
    folder.mkdir(parents=True, exist_ok=True)
    with store.session() as session:
        for i in range(count):
            path = folder / f"f{i}.bin"
            path.write_bytes(f"content {i}".encode())
            ids.append(documents.register(session, path, documents.digest_file(path)).id)
    return ids


def statuses(store) -> dict[int, tuple[str, str | None, int]]:  # noqa: ANN001
    with store.session() as session:
        return {d.id: (d.status, d.claimed_by, d.attempts) for d in session.query(Document).all()}


def test_claims_hand_out_each_document_once(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 5)
    first = claim_documents(store, "a:1", 3)
    second = claim_documents(store, "b:2", 3)
    assert [c.id for c in first] == ids[:3]
    assert [c.id for c in second] == ids[3:]
    assert claim_documents(store, "c:3", 3) == []
    rows = statuses(store)
    assert all(status == DocumentStatus.PROCESSING for status, _, _ in rows.values())
    assert {rows[i][1] for i in ids[:3]} == {"a:1"}
    assert all(rows[i][2] == 1 for i in ids)


def test_concurrent_claimers_never_share_a_document(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 60)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(6)

    def worker(name: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := claim_documents(store, name, 4):
            mine += [c.id for c in batch]
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w:{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [doc_id for mine in got.values() for doc_id in mine]
    assert sorted(claimed) == ids  # every document once, none twice
    rows = statuses(store)
    for name, mine in got.items():
        assert all(rows[i][1] == name for i in mine)


def test_stale_claims_are_taken_over_unless_renewed(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 2)
    claim_documents(store, "dead:1", 2)
    assert claim_documents(store, "live:2", 2, stale_after=timedelta(hours=1)) == []
    assert heartbeat(store, "dead:1", [ids[0]]) == 1
    assert heartbeat(store, "someone-else:3", ids) == 0
    taken = claim_documents(store, "live:2", 2, stale_after=timedelta(0))
    assert sorted(c.id for c in taken) == ids
    assert all(c.attempts == 2 for c in taken)


def test_release_dead_local_claims_but_not_live_ones(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 3)
    host = socket.gethostname()
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid is certainly not alive now
    dead_pid = child.pid
    claim_documents(store, f"{host}:{dead_pid}", 1)
    claim_documents(store, f"{host}:{os.getppid()}", 1)  # alive: our parent
    claim_documents(store, f"elsewhere:{dead_pid}", 1)  # other host: cannot tell, keep
    freed = release_dead_claims(store, f"{host}:{os.getpid()}")
    assert freed == [ids[0]]
    rows = statuses(store)
    assert rows[ids[0]][:2] == (DocumentStatus.PENDING, None)
    assert rows[ids[1]][0] == rows[ids[2]][0] == DocumentStatus.PROCESSING


def test_released_claims_go_back_to_the_queue(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 2)
    claim_documents(store, "me:1", 2)
    assert release_claims(store, "other:2", ids) == 0
    assert release_claims(store, "me:1", ids) == 2
    again = claim_documents(store, "me:1", 2)
    assert [(c.id, c.attempts) for c in again] == [(ids[0], 1), (ids[1], 1)]


# --- the daemon as a real process -------------------------------------------------------------

DAEMON_START_TIMEOUT = 180  # TensorFlow import + model load + warm-up on a busy 2-core box
PROCESS_TIMEOUT = 240


class NotifySocket:
    """Stands in for systemd: collects the daemon's sd_notify datagrams."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.extend(data.decode().splitlines())

    def seen(self, prefix: str) -> bool:
        return any(m.startswith(prefix) for m in list(self.messages))

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self._sock.close()


class Watcher:
    """`python -m ocrd watch ...` in the background, logging to a file."""

    def __init__(self, tmp_path: Path, name: str, inbox: Path, db_url: str, *extra: str) -> None:
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        self.notify = NotifySocket(tmp_path / f"{name}.sock")
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [
            sys.executable, "-m", "ocrd", "watch", str(inbox), "--db", db_url,
            "--settle-seconds", "0.2", "--rescan-seconds", "1", "--workers", "1",
            *extra,
        ]  # fmt: skip
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = DAEMON_START_TIMEOUT) -> None:
        wait_for(
            lambda: self.notify.seen("READY=1") or self.process.poll() is not None,
            timeout,
            f"{self.name} did not become ready",
        )
        assert self.process.poll() is None, f"{self.name} exited:\n{self.log()}"

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()
            self.notify.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()
        self.notify.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, message: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.2)


def make_drop(folder: Path, *, forms: int, seed: int) -> dict[str, list[Path]]:
    """Real test files made with the project's own form generator (MNIST t10k digits: these
    files only evaluate, nothing is trained on them). Returns files by expected outcome."""
    from PIL import Image

    from training.forms import DigitBank, generate

    folder.mkdir(parents=True, exist_ok=True)
    good = generate(
        folder / "forms", pages=forms + 1, seed=seed, split="t10k", fmt="png", dpi=150, rows=3,
        size_inches=(6.0, 4.5), degradations=("clean",),
    )  # fmt: skip
    for truth in (folder / "forms").glob("*.json"):
        truth.unlink()
    disguised = folder / f"png-named-{seed}.jpg"  # wrong extension, right content: read fine
    good.pop().rename(disguised)
    bank = DigitBank.load("t10k")
    rng = np.random.default_rng(seed)
    for digit in (3, 7):
        paper = 255 - np.pad(bank.sample(digit, rng), 12)  # dark digit on white, as scanned
        image = Image.fromarray(paper.astype(np.uint8))
        path = folder / f"digit-{digit}-{seed}.png"
        image.resize((image.width * 2, image.height * 2)).save(path)
        good.append(path)
    duplicate = folder / f"copy-of-{good[0].name}"
    duplicate.write_bytes(good[0].read_bytes())
    bad = {
        f"truncated-{seed}.png": good[1].read_bytes()[: good[1].stat().st_size // 3],
        f"empty-{seed}.png": b"",
        f"notes-{seed}.png": b"this is not an image\n" * 20,
        f"archive-{seed}.tif": b"PK\x03\x04" + os.urandom(500),
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    return {
        "good": good + [disguised],
        "duplicate": [duplicate],
        "bad": [folder / name for name in bad],
    }


def drop(files: list[Path], inbox: Path) -> None:
    """Like a scanner: write under a temp name, then rename into place."""
    for source in files:
        temp = inbox / (source.name + ".part")
        temp.write_bytes(source.read_bytes())
        os.replace(temp, inbox / source.name)


def documents_by_name(db_url: str) -> dict[str, list[Document]]:
    from ocrd.store import open_store

    store = open_store(db_url, upgrade=False)
    try:
        with store.session() as session:
            rows = session.query(Document).order_by(Document.id).all()
            by_name: dict[str, list[Document]] = {}
            for row in rows:
                by_name.setdefault(row.original_name, []).append(row)
            return by_name
    finally:
        store.dispose()


def result_boxes(db_url: str) -> dict[int, list[tuple]]:
    from ocrd.store import Result, open_store

    store = open_store(db_url, upgrade=False)
    try:
        with store.session() as session:
            boxes: dict[int, list[tuple]] = {}
            for r in session.query(Result).all():
                boxes.setdefault(r.document_id, []).append((r.page, r.x, r.y, r.w, r.h))
            return boxes
    finally:
        store.dispose()


def all_settled(db_url: str, names: list[str]) -> bool:
    try:
        by_name = documents_by_name(db_url)
    except Exception:
        return False  # database not created yet
    final = {DocumentStatus.DONE, DocumentStatus.FAILED, DocumentStatus.DUPLICATE}
    return all(n in by_name and all(d.status in final for d in by_name[n]) for n in names)


def files_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def assert_exactly_once(db_url: str, drop_set: dict[str, list[Path]], root: Path) -> None:
    """The issue's invariants after the daemon has handled a drop."""
    inbox, processed, failed = root / "inbox", root / "processed", root / "failed"
    by_name = documents_by_name(db_url)
    boxes = result_boxes(db_url)
    for path in drop_set["good"]:
        rows = by_name[path.name]
        assert [r.status for r in rows] == [DocumentStatus.DONE], (path.name, rows)
        moved = Path(rows[0].path)
        assert (
            moved.parent.parent.parent.parent == processed
            and moved.read_bytes() == path.read_bytes()
        )
        fields = boxes.get(rows[0].id, [])
        assert len(fields) == len(set(fields))  # no result row twice
    for path in drop_set["duplicate"]:
        (row,) = by_name[path.name]
        assert row.status == DocumentStatus.DUPLICATE and row.duplicate_of is not None
        assert row.id not in boxes
    for path in drop_set["bad"]:
        (row,) = by_name[path.name]
        assert row.status == DocumentStatus.FAILED and row.error
        moved = Path(row.path)
        assert moved.parent == failed and moved.read_bytes() == path.read_bytes()
        assert moved.with_name(moved.name + ".error.txt").read_text().strip()
    expected_processed = len(drop_set["good"]) + len(drop_set["duplicate"])
    assert len(files_below(processed)) == expected_processed
    assert len(files_below(failed)) == 2 * len(drop_set["bad"])
    assert files_below(inbox) == []


def folders(tmp_path: Path) -> Path:
    root = tmp_path / "srv"
    for name in ("inbox", "processed", "failed"):
        (root / name).mkdir(parents=True)
    return root


def test_watch_reads_a_mixed_drop_exactly_once(tmp_path: Path, sqlite_url: str) -> None:
    root = folders(tmp_path)
    drop_set = make_drop(tmp_path / "staging", forms=2, seed=1)
    early = tmp_path / "staging" / "early.png"  # in the inbox before the daemon starts
    early.write_bytes(drop_set["good"][0].read_bytes())
    (root / "inbox" / early.name).write_bytes(early.read_bytes())
    config = tmp_path / "ocrd.toml"
    config.write_text('log_level = "INFO"\n')
    port = free_port()
    watcher = Watcher(
        tmp_path, "solo", root / "inbox", sqlite_url, "--config", str(config),
        "--metrics-port", str(port),
    )  # fmt: skip
    try:
        watcher.wait_ready()
        config.write_text('log_level = "DEBUG"\nduplicates = "skip"\n')
        watcher.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded settings (changed: log_level)" in watcher.log(), 30, "no reload")
        drop([p for files in drop_set.values() for p in files], root / "inbox")
        (root / "inbox" / ".hidden.png").write_bytes(b"ignored")
        (root / "inbox" / "upload.png.part").write_bytes(b"still uploading")
        names = [p.name for files in drop_set.values() for p in files] + [early.name]
        wait_for(lambda: all_settled(sqlite_url, names), PROCESS_TIMEOUT, "drop not finished")
        wait_for(lambda: len(files_below(root / "inbox")) == 2, 30, "inbox not emptied")
        assert watcher.notify.seen("STATUS=") and watcher.notify.seen("WATCHDOG=1")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        code = watcher.stop()
    assert code == 0, watcher.log()
    assert watcher.notify.seen("STOPPING=1")
    assert sorted(p.name for p in files_below(root / "inbox")) == [".hidden.png", "upload.png.part"]
    for path in files_below(root / "inbox"):
        path.unlink()  # ignored by design
    # Three files with one content: whichever was registered first is read, the others are
    # duplicates of it.
    same = [early, drop_set["good"][0], drop_set["duplicate"][0]]
    by_name = documents_by_name(sqlite_url)
    (read,) = [p for p in same if by_name[p.name][0].status == DocumentStatus.DONE]
    drop_set["good"][0] = read
    drop_set["duplicate"] = [p for p in same if p != read]
    assert_exactly_once(sqlite_url, drop_set, root)
    assert any(result_boxes(sqlite_url).values()), "no field was read from any form"
    done = count_status(sqlite_url, "done")
    failed = count_status(sqlite_url, "failed")
    assert f'ocrd_documents_total{{outcome="done"}} {done}'.encode() in metrics
    assert f'ocrd_documents_total{{outcome="failed"}} {failed}'.encode() in metrics


def make_burst(folder: Path, count: int, seed: int) -> list[Path]:
    from training.forms import generate

    files = generate(
        folder, pages=count, seed=seed, split="t10k", fmt="png", dpi=150, rows=3,
        size_inches=(6.0, 4.5), degradations=("clean", "noise"),
    )  # fmt: skip
    for truth in folder.glob("*.json"):
        truth.unlink()
    return files


def count_status(db_url: str, status: str) -> int:
    try:
        by_name = documents_by_name(db_url)
    except Exception:
        return 0
    return sum(1 for rows in by_name.values() for row in rows if row.status == status)


def test_kill_9_mid_burst_then_restart_finishes_exactly_once(
    tmp_path: Path, sqlite_url: str
) -> None:
    root, inbox = folders(tmp_path), tmp_path / "srv" / "inbox"
    burst = make_burst(tmp_path / "staging", 16, seed=2)
    first = Watcher(tmp_path, "first", inbox, sqlite_url)
    try:
        first.wait_ready()
        drop(burst, inbox)
        wait_for(lambda: count_status(sqlite_url, "done") >= 1, PROCESS_TIMEOUT, "nothing done")
    finally:
        first.kill()
    done_at_kill = count_status(sqlite_url, "done")
    assert done_at_kill < len(burst), "the burst finished before the kill: nothing was tested"

    # Also the narrowest windows, set up by hand: a result committed but the file never moved,
    # and a document left `processing` by a worker of this host that no longer exists.
    from ocrd.store import open_store
    from ocrd.types import Box, DocumentReading, FieldReading

    committed = inbox / "committed-not-moved.png"
    committed.write_bytes(make_burst(tmp_path / "extra", 1, seed=9)[0].read_bytes())
    store = open_store(sqlite_url)
    reading = DocumentReading(
        "image/png", 1, [FieldReading(1, Box(1, 2, 3, 4), "42", 0.9, "handwritten", "m@1")]
    )
    with store.session() as session:
        doc = documents.register(session, committed, documents.digest_file(committed))
        documents.finish(session, doc.id, reading)
        committed_id = doc.id
    store.dispose()

    second = Watcher(tmp_path, "second", inbox, sqlite_url)
    try:
        second.wait_ready()
        names = [p.name for p in burst] + [committed.name]
        wait_for(lambda: all_settled(sqlite_url, names), PROCESS_TIMEOUT, "burst not finished")
        wait_for(lambda: files_below(inbox) == [], 30, "inbox not emptied")
    finally:
        assert second.stop() == 0, second.log()
    by_name = documents_by_name(sqlite_url)
    (row,) = by_name[committed.name]
    assert row.id == committed_id and row.status == DocumentStatus.DONE
    assert result_boxes(sqlite_url)[committed_id] == [(1, 1, 2, 3, 4)]  # not read again
    assert Path(row.path).parent.parent.parent.parent == root / "processed"
    committed_copy = tmp_path / "staging" / committed.name
    committed_copy.write_bytes(Path(row.path).read_bytes())
    drop_set = {"good": [*burst, committed_copy], "duplicate": [], "bad": []}
    assert_exactly_once(sqlite_url, drop_set, root)


def test_three_daemons_share_one_inbox_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    root, inbox = folders(tmp_path), tmp_path / "srv" / "inbox"
    drop_set = make_drop(tmp_path / "staging", forms=6, seed=3)
    watchers = [Watcher(tmp_path, f"daemon{i}", inbox, postgres_url) for i in range(3)]
    try:
        for watcher in watchers:
            watcher.wait_ready()
        drop([p for files in drop_set.values() for p in files], inbox)
        names = [p.name for files in drop_set.values() for p in files]
        wait_for(lambda: all_settled(postgres_url, names), PROCESS_TIMEOUT, "drop not finished")
        wait_for(lambda: files_below(inbox) == [], 30, "inbox not emptied")
    finally:
        codes = [watcher.stop() for watcher in watchers]
    assert codes == [0, 0, 0], [w.log() for w in watchers]
    assert_exactly_once(postgres_url, drop_set, root)
    # Each file was read by exactly one of the three daemons.
    read_by = Counter(
        name
        for watcher in watchers
        for name in re.findall(r" (?:done|failed) (\S+): ", watcher.log())
    )
    expected = {p.name for p in drop_set["good"] + drop_set["bad"]}
    assert set(read_by) == expected
    assert set(read_by.values()) == {1}


# --- start-up checks and retry ------------------------------------------------------------------


def test_startup_refuses_missing_or_nested_folders(tmp_path: Path) -> None:
    from ocrd.config import load_settings
    from ocrd.service import StartupError, check_folders

    inbox = tmp_path / "inbox"
    with pytest.raises(StartupError, match="does not exist"):
        check_folders(load_settings({"inbox": inbox}))
    inbox.mkdir()
    settings = load_settings({"inbox": inbox})
    check_folders(settings)  # creates the sibling output folders
    assert (tmp_path / "processed").is_dir() and (tmp_path / "failed").is_dir()
    with pytest.raises(StartupError, match="neither inside the other"):
        check_folders(load_settings({"inbox": inbox, "processed": inbox / "done"}))
    with pytest.raises(StartupError, match="neither inside the other"):
        check_folders(load_settings({"inbox": inbox, "failed": tmp_path}))


def test_watch_exits_2_with_a_clear_message_on_bad_start(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    finished = subprocess.run(
        [sys.executable, "-m", "ocrd", "watch", str(missing), "--db", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert finished.returncode == 2
    assert f"inbox {missing} does not exist" in finished.stderr


def test_retry_command_puts_failed_files_back(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ocrd.cli import app
    from ocrd.intake import move_to_failed

    inbox, failed = tmp_path / "inbox", tmp_path / "failed"
    inbox.mkdir()
    for name in ("a.png", "b.png"):
        move_to_failed(write_bytes(tmp_path / "tmp" / name, name.encode()), failed, "bad")
    runner = CliRunner()
    args = ["retry", "--inbox", str(inbox), "--failed", str(failed)]
    outcome = runner.invoke(app, [*args, "a.png"])
    assert outcome.exit_code == 0, outcome.output
    assert sorted(p.name for p in inbox.iterdir()) == ["a.png"]
    assert runner.invoke(app, [*args, "zzz.png"]).exit_code == 2
    outcome = runner.invoke(app, args)
    assert outcome.exit_code == 0 and "1 file(s) back" in outcome.output
    assert sorted(p.name for p in inbox.iterdir()) == ["a.png", "b.png"]
    assert list(failed.iterdir()) == []


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_worker_gives_up_on_files_that_keep_killing_it_and_notices_vanished_ones(
    tmp_path: Path,
) -> None:
    from ocrd.config import load_settings
    from ocrd.service import Daemon
    from ocrd.store.claims import Claim

    daemon = Daemon(load_settings({"inbox": tmp_path}), max_attempts=3)
    path = write_bytes(tmp_path / "scan.png", b"content")
    sha = documents.digest_file(path).sha256
    crashed = daemon._process(Claim(1, str(path), sha, attempts=4))
    assert crashed.reading is None and "gave up after 3 attempts" in crashed.reason
    replaced = daemon._process(Claim(2, str(path), "0" * 64, attempts=1))
    # Changed since it was taken (a writer that paused): not failed, put back to settle.
    assert replaced.requeue and replaced.reason is None
    path.unlink()
    vanished = daemon._process(Claim(3, str(path), sha, attempts=1))
    assert "disappeared" in vanished.reason


# --- the shipped service files ------------------------------------------------------------------

SYSTEMD_DIR = Path(__file__).resolve().parents[1] / "systemd"


def test_example_config_is_valid_settings() -> None:
    from ocrd.config import load_settings

    settings = load_settings(config_file=SYSTEMD_DIR / "ocrd.toml")
    assert settings.inbox == Path("/srv/ocrd/inbox")
    assert settings.database_url == "sqlite:////var/lib/ocrd/ocrd.db"
    # commented out there: per host, and the calibrated per-family accept thresholds
    assert all(source.startswith("file:") for name, source in settings.sources.items()
               if name not in ("workers", "worker_id", "accept_confidence"))  # fmt: skip
    assert settings.accept_confidence is None


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    import shutil

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    unit = (SYSTEMD_DIR / "ocrd.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "ProtectSystem=strict" in unit
    # The ocrd binary is not installed at /opt/ocrd here: point ExecStart at one that exists.
    local = tmp_path / "ocrd.service"
    local.write_text(unit.replace("/opt/ocrd/venv/bin/ocrd", shutil.which("true") or "/bin/true"))
    finished = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 0 and "ocrd.service" not in finished.stderr, finished.stderr
