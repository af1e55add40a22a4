"""A hostile inbox against one running `ocrd watch` (SQLite): FIFOs, links to devices and to
private files, names that are not UTF-8 or too long, control characters in names, a huge TIFF,
too many pages, a full disk, unreadable files, a writer that pauses, pages with no fields,
sub-folders. After every hostile drop a normal form dropped next is done within 10 s and the
daemon still runs.

When the tests run as root the daemon runs without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
(setpriv), so file permissions bind it as they bind a service user.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrd.intake import processed_folder
from ocrd.store import DocumentStatus
from tests.test_daemon import (
    DAEMON_START_TIMEOUT,
    NotifySocket,
    documents_by_name,
    files_below,
    make_burst,
    wait_for,
)

NORMAL_DEADLINE = 10.0  # the bound for a normal form after a hostile drop
MAX_PAGES = 3
DROP_PRIVILEGE = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    if os.geteuid() == 0 and shutil.which("setpriv")
    else []
)


class Hostile:
    """The shared daemon, its folders and a supply of distinct normal forms."""

    def __init__(self, root: Path, forms: list[Path]) -> None:
        self.root = root
        self.inbox, self.processed, self.failed = (
            root / n for n in ("inbox", "processed", "failed")
        )
        for folder in (self.inbox, self.processed, self.failed):
            folder.mkdir(parents=True, exist_ok=True)
        self.db_url = f"sqlite:///{root / 'ocrd.db'}"
        self.forms = iter(forms)
        self.form_bytes = forms[0].read_bytes()
        self.log_path = root / "daemon.log"
        self.notify = NotifySocket(root / "notify.sock")
        self.seq = itertools.count()
        # A stale temp copy left by a process that died mid-move: swept at start-up.
        stale = self.processed / ".ocrd-999999999-1.part"
        stale.write_bytes(b"half a copy")
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
        self.stale = stale

    def start(self) -> None:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify.path),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "JOURNAL_STREAM": "8:1234",  # journald line format: "<priority>message"
            "OCRD_MAX_PAGES": str(MAX_PAGES),
        }
        command = [
            *DROP_PRIVILEGE, sys.executable, "-m", "ocrd", "watch", str(self.inbox),
            "--db", self.db_url, "--settle-seconds", "0.2", "--rescan-seconds", "1",
            "--workers", "1",
        ]  # fmt: skip
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        wait_for(
            lambda: self.notify.seen("READY=1") or self.process.poll() is not None,
            DAEMON_START_TIMEOUT,
            "daemon did not become ready",
        )
        assert self.process.poll() is None, self.log()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(30)
        finally:
            self._log.close()
            self.notify.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rows(self) -> dict[str, list]:
        return documents_by_name(self.db_url)

    def status_of(self, name: str) -> str | None:
        rows = self.rows().get(name)
        return rows[-1].status if rows else None

    def wait_status(self, name: str, status: str, timeout: float) -> None:
        try:
            wait_for(lambda: self.status_of(name) == status, timeout, "")
        except AssertionError:
            rows = [(r.status, r.error) for r in self.rows().get(name, [])]
            tail = self.log()[-3000:]
            raise AssertionError(f"{name}: not {status} in {timeout} s: {rows}\n{tail}") from None

    def drop_normal_form_and_expect_it_done(self) -> None:
        """The issue's proof after each hostile drop: a normal form is done within 10 s."""
        name = f"normal-{next(self.seq)}.png"
        temp = self.inbox / (name + ".part")
        temp.write_bytes(next(self.forms).read_bytes())
        os.replace(temp, self.inbox / name)
        self.wait_status(name, "done", NORMAL_DEADLINE)
        assert self.process.poll() is None, "the daemon stopped"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    staging = tmp_path_factory.mktemp("staging")
    forms = make_burst(staging, 24, seed=13)
    daemon = Hostile(tmp_path_factory.mktemp("srv"), forms)
    daemon.start()
    try:
        yield daemon
    finally:
        code = daemon.stop()
        assert code == 0, daemon.log()[-3000:]


def write_form_copy(path: Path, hostile: Hostile, salt: bytes) -> Path:
    """The first form's pixels, with a few bytes appended so that the content (sha256) is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hostile.form_bytes + salt)
    return path


def error_text(failed: Path, name: str) -> str:
    return (failed / (name + ".error.txt")).read_text()


# --- 1, 2: FIFOs and links to endless special files ------------------------------------------


def test_fifo_is_reported_once_and_left_alone(hostile: Hostile) -> None:
    fifo = hostile.inbox / "fifo.png"
    os.mkfifo(fifo)
    try:
        hostile.drop_normal_form_and_expect_it_done()
        time.sleep(2.5)  # two more rescans: still one report
        assert hostile.log().count("fifo.png in the inbox: not a regular file (named pipe") == 1
        assert fifo.exists() and "fifo.png" not in hostile.rows()
    finally:
        fifo.unlink()


def test_symlink_to_dev_zero_goes_to_failed_without_being_read(hostile: Hostile) -> None:
    (hostile.inbox / "z.png").symlink_to("/dev/zero")
    hostile.drop_normal_form_and_expect_it_done()
    wait_for(lambda: (hostile.failed / "z.png").is_symlink(), 5, "link not moved to failed/")
    assert os.readlink(hostile.failed / "z.png") == "/dev/zero"
    assert "symbolic link, not followed" in error_text(hostile.failed, "z.png")


def test_process_command_fails_a_fifo_named_on_the_command_line(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "ocrd", "process", str(fifo), "--db", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "not a regular file (named pipe (FIFO))" in done.stderr
    assert "1 file: 0 done (0 results), 0 duplicate, 1 failed" in done.stdout


# --- 3: names that are not UTF-8 ------------------------------------------------------------


def test_name_that_is_not_utf8_is_renamed_and_read(hostile: Hostile) -> None:
    raw = os.fsencode(hostile.inbox) + b"/bad\xffutf8.png"
    with open(raw, "wb") as handle:
        handle.write(hostile.form_bytes + b"utf8")
    hostile.wait_status("bad%FFutf8.png", "done", 30)
    assert "renamed " in hostile.log() and "bad\\xffutf8.png" in hostile.log()
    hostile.drop_normal_form_and_expect_it_done()


def test_process_command_reads_a_folder_with_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/bad\xffutf8.png", "wb") as handle:
        handle.write(b"not an image at all")
    done = subprocess.run(
        [sys.executable, "-m", "ocrd", "process", str(folder), "--db", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "bad\\xffutf8.png: not an image" in done.stderr


# --- 5: names at the file system's length limit ---------------------------------------------


def test_long_names_are_shortened_to_fit_when_numbered_or_given_a_reason_file(
    hostile: Hostile,
) -> None:
    name = "d" * 251 + ".png"  # 255 bytes
    today = processed_folder(hostile.processed)
    today.mkdir(parents=True, exist_ok=True)
    (today / name).write_bytes(b"taken")  # forces 'name (1).png', which must be shortened
    write_form_copy(hostile.inbox / name, hostile, b"long")
    bad = "f" * 251 + ".png"
    (hostile.inbox / bad).write_bytes(b"this is not an image\n" * 5)
    wait_for(
        lambda: hostile.status_of(name) == "done" and hostile.status_of(bad) == "failed",
        30,
        "long names not finished",
    )
    rows = hostile.rows()
    moved = Path(rows[name][-1].path)
    assert moved.parent == today and moved.name.endswith(" (1).png")
    assert len(os.fsencode(moved.name)) <= 255 and moved.read_bytes().endswith(b"long")
    failed_to = Path(rows[bad][-1].path)
    assert failed_to.parent == hostile.failed
    assert "not an image" in failed_to.with_name(failed_to.name + ".error.txt").read_text()
    assert not (hostile.inbox / name).exists() and not (hostile.inbox / bad).exists()
    hostile.drop_normal_form_and_expect_it_done()


# --- 7: links to files the daemon's user can reach but the dropper could not -----------------


def test_symlink_to_a_private_file_is_not_followed(hostile: Hostile, tmp_path: Path) -> None:
    private = write_form_copy(tmp_path / "private.png", hostile, b"private")
    private.chmod(0o600)
    (hostile.inbox / "peek.png").symlink_to(private)
    hostile.drop_normal_form_and_expect_it_done()
    wait_for(lambda: (hostile.failed / "peek.png").is_symlink(), 5, "link not moved")
    assert "peek.png" not in hostile.rows()  # nothing was read through it
    assert private.exists()


def test_links_inside_the_inbox_may_be_allowed(tmp_path: Path) -> None:
    from ocrd.intake import classify

    inbox = tmp_path / "inbox"
    (inbox / "scans").mkdir(parents=True)
    (inbox / "scans" / "a.png").write_bytes(b"x")
    (inbox / "inside.png").symlink_to(inbox / "scans" / "a.png")
    (inbox / "outside.png").symlink_to("/etc/hostname")
    assert classify(inbox / "inside.png", inbox)[0] == "link"  # default: refused
    assert classify(inbox / "inside.png", inbox, "inside-inbox") == ("file", None)
    kind, reason = classify(inbox / "outside.png", inbox, "inside-inbox")
    assert kind == "link" and "outside the inbox" in reason


# --- 8: log injection ------------------------------------------------------------------------


def test_control_characters_in_names_cannot_forge_log_lines(hostile: Hostile) -> None:
    name = "evil\n<2>forged critical.png"
    (hostile.inbox / name).write_bytes(b"not an image, with a forged name\n")
    hostile.wait_status(name, "failed", 30)
    hostile.drop_normal_form_and_expect_it_done()
    lines = hostile.log().splitlines()
    assert not [line for line in lines if line.startswith("<2>")]
    mentions = [line for line in lines if "forged" in line]
    assert mentions and all("evil\\n<2>forged critical.png" in line for line in mentions)
    # Under JOURNAL_STREAM each of those lines carries its own priority (warning or info).
    assert all(line[:3] in ("<4>", "<6>") for line in mentions), mentions


# --- 9: memory ---------------------------------------------------------------------------------


def test_huge_deflate_tiff_is_reduced_while_decoding(hostile: Hostile, tmp_path: Path) -> None:
    side = 14000  # 196 Mpx: under the 200 Mpx limit
    page = Image.new("L", (side, side), 255)
    page.paste(Image.open(next(hostile.forms)).convert("L"), (500, 500))
    path = tmp_path / "huge.tif"
    page.save(path, compression="tiff_adobe_deflate")  # no resolution tag: read as 1 dpi before
    del page
    os.replace(path, hostile.inbox / "huge.tif")
    hostile.wait_status("huge.tif", "done", 90)
    peak_kb = _peak_rss_kb(hostile.process.pid)  # the daemon and its vision worker processes
    assert peak_kb < 1_500_000, f"daemon + workers peak RSS {peak_kb / 1024:.0f} MiB"
    hostile.drop_normal_form_and_expect_it_done()


def _peak_rss_kb(pid: int) -> int:
    """The sum of the peaks (VmHWM) of `pid` and every process below it: pages are decoded in
    the engine's worker processes, so the daemon's own peak alone would say little."""
    parents = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            )
    tree = {pid}
    while below := {p for p, parent in parents.items() if parent in tree} - tree:
        tree |= below
    total = 0
    for member in tree:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{member}/status").read_text()
            total += next(
                int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmHWM:")
            )
    assert total, "no VmHWM"
    return total


def test_documents_over_the_page_cap_fail_with_the_reason(hostile: Hostile, tmp_path: Path) -> None:
    pages = [Image.new("L", (200, 300), 255) for _ in range(MAX_PAGES + 1)]
    path = tmp_path / "long.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:], dpi=(100, 100))
    os.replace(path, hostile.inbox / "long.tif")
    hostile.wait_status("long.tif", "failed", 30)
    assert f"too many pages: {MAX_PAGES + 1} (limit {MAX_PAGES}" in error_text(
        hostile.failed, "long.tif"
    )
    hostile.drop_normal_form_and_expect_it_done()


# --- 10: full disk -----------------------------------------------------------------------------


def test_full_disk_leaves_no_temp_files_and_the_move_completes_later(hostile: Hostile) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    assert not hostile.stale.exists(), "the stale temp copy was not swept at start-up"
    today = processed_folder(hostile.processed)
    today.mkdir(parents=True, exist_ok=True)
    held = [p for p in today.iterdir()]
    if held:  # files from earlier tests: keep them aside while the tmpfs covers the folder
        aside = hostile.root / "aside"
        aside.mkdir(exist_ok=True)
        for path in held:
            os.rename(path, aside / path.name)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(today)], check=True)
    try:
        filler = today / "filler.bin"
        with contextlib.suppress(OSError), open(filler, "wb") as handle:
            handle.write(b"\0" * (1 << 20))  # fills the 256 KiB
        write_form_copy(hostile.inbox / "disk-full.png", hostile, b"full")
        hostile.wait_status("disk-full.png", "done", 30)
        time.sleep(3)  # several move attempts (one per rescan)
        assert (hostile.inbox / "disk-full.png").exists()
        assert [p.name for p in today.iterdir()] == ["filler.bin"]  # no .ocrd-*.part left
        filler.unlink()
        wait_for(lambda: (today / "disk-full.png").exists(), 10, "move not completed")
        assert not (hostile.inbox / "disk-full.png").exists()
        wait_for(lambda: Path(hostile.rows()["disk-full.png"][-1].path).parent == today, 10, "row")
    finally:
        subprocess.run(["umount", "-l", str(today)], check=False)
        if held:
            for path in held:
                os.rename(hostile.root / "aside" / path.name, today / path.name)
    hostile.drop_normal_form_and_expect_it_done()


# --- 11: unreadable files -----------------------------------------------------------------------


def test_unreadable_file_is_logged_once_shown_in_status_and_read_when_allowed(
    hostile: Hostile,
) -> None:
    if os.geteuid() == 0 and not DROP_PRIVILEGE:
        pytest.skip("root reads everything and setpriv is missing")
    path = write_form_copy(hostile.inbox / "locked.png", hostile, b"locked")
    path.chmod(0o000)
    try:
        wait_for(lambda: "cannot read" in hostile.log() and "locked.png" in hostile.log(), 15, "?")
        hostile.drop_normal_form_and_expect_it_done()
        time.sleep(2)
        assert hostile.log().count("locked.png: permission denied; will retry") == 1
        status = subprocess.run(
            [*DROP_PRIVILEGE, sys.executable, "-m", "ocrd", "status", "--json",
             "--db", hostile.db_url],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "OCRD_INBOX": str(hostile.inbox)},
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        unreadable = json.loads(status.stdout)["unreadable"]
        assert [u["path"] for u in unreadable] == [str(path)]
        assert "locked.png" not in hostile.rows()
    finally:
        path.chmod(0o644)
    hostile.wait_status("locked.png", "done", 40)


# --- 12: a writer that pauses longer than settle_seconds ------------------------------------------


def test_writer_pausing_longer_than_settle_time_is_not_failed(hostile: Hostile) -> None:
    data = hostile.form_bytes + b"paused"
    with open(hostile.inbox / "slow.png", "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        time.sleep(2.0)  # ten settle times
        handle.write(data[len(data) // 2 :])
    wait_for(lambda: hostile.status_of("slow.png") in ("done", "failed"), 30, "not finished")
    rows = hostile.rows()["slow.png"]
    assert [r.status for r in rows] == [DocumentStatus.DONE], [(r.status, r.error) for r in rows]
    hostile.drop_normal_form_and_expect_it_done()


# --- 13: pages with no fields; a TIFF whose resolution tag says 1 dpi ---------------------------


def test_page_without_fields_gets_a_note_counted_in_status(
    hostile: Hostile, tmp_path: Path
) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((1754, 1240), 255, np.uint8)).save(blank, dpi=(150, 150))
    os.replace(blank, hostile.inbox / "blank.png")
    hostile.wait_status("blank.png", "done", 30)
    assert hostile.rows()["blank.png"][-1].notes == ["no fields found"]
    status = subprocess.run(
        [sys.executable, "-m", "ocrd", "status", "--db", hostile.db_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    noted = [r for rows in hostile.rows().values() for r in rows if r.notes]
    assert noted and f"done with no fields found: {len(noted)}" in status.stdout, status.stdout
    hostile.drop_normal_form_and_expect_it_done()


def test_tiff_with_a_one_dpi_resolution_tag_still_yields_fields(
    hostile: Hostile, tmp_path: Path
) -> None:
    from training.forms import generate

    (a4,) = generate(tmp_path / "a4", pages=1, seed=14, split="t10k", fmt="png", dpi=150)
    path = tmp_path / "one-dpi.tif"
    Image.open(a4).convert("L").save(path, dpi=(1, 1))
    os.replace(path, hostile.inbox / "one-dpi.tif")
    hostile.wait_status("one-dpi.tif", "done", 30)
    assert not hostile.rows()["one-dpi.tif"][-1].notes  # fields were found


# --- issue 14 item 8: sub-folders keep their relative path ---------------------------------------


def test_sub_folders_keep_their_relative_path(hostile: Hostile) -> None:
    for sub in ("north", "south"):
        write_form_copy(hostile.inbox / sub / "scan.png", hostile, sub.encode())
    names = ["north/scan.png", "south/scan.png"]
    wait_for(lambda: all(hostile.status_of(n) == "done" for n in names), 30, "not done")
    today = processed_folder(hostile.processed)
    for name in names:
        moved = Path(hostile.rows()[name][-1].path)
        assert moved == today / name and moved.read_bytes().endswith(name.split("/")[0].encode())
    assert not files_below(hostile.inbox / "north") and not files_below(hostile.inbox / "south")
