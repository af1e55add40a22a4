"""Intake on real temp folders: ignores, settling of a file still being written, hashing,
collision-free moves, reason files and retry."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from ocrd.intake import (
    ERROR_SUFFIX,
    WRITER_GRACE_SECONDS,
    Inbox,
    Settler,
    is_ignored,
    move_no_clobber,
    move_to_failed,
    move_to_processed,
    retry_failed,
    scan_inbox,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, data: bytes = b"content") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "name",
    [".hidden.png", "scan.png.part", "upload.tmp", "~$report.png", ".DS_Store", "Thumbs.db"],
)
def test_builtin_ignores(tmp_path: Path, name: str) -> None:
    assert is_ignored(tmp_path / name, tmp_path)


def test_ignores_apply_to_folders_and_user_patterns(tmp_path: Path) -> None:
    assert is_ignored(tmp_path / "@eaDir" / "scan.png", tmp_path)
    assert is_ignored(tmp_path / "drafts" / "a.png", tmp_path, ["drafts"])
    assert is_ignored(tmp_path / "a.bak", tmp_path, ["*.bak"])
    assert not is_ignored(tmp_path / "scan.png", tmp_path, ["*.bak"])


def test_scan_inbox_flat_and_recursive(tmp_path: Path) -> None:
    write(tmp_path / "a.png")
    write(tmp_path / ".b.png")
    write(tmp_path / "sub" / "c.png")
    write(tmp_path / "@eaDir" / "d.png")
    flat = {p.relative_to(tmp_path).as_posix() for p in scan_inbox(tmp_path)}
    deep = {p.relative_to(tmp_path).as_posix() for p in scan_inbox(tmp_path, recursive=True)}
    assert flat == {"a.png"}
    assert deep == {"a.png", "sub/c.png"}


def test_settler_waits_for_unchanged_size_and_mtime(tmp_path: Path) -> None:
    clock = FakeClock()
    settler = Settler(1.0, clock=clock)
    path = write(tmp_path / "a.png", b"x")
    settler.offer(path)
    assert settler.ready() == []
    clock.now += 0.5
    assert settler.ready() == []
    clock.now += 0.6
    assert settler.ready() == [path]
    assert len(settler) == 0


def test_settler_backs_off_while_file_changes_and_never_drops_it(tmp_path: Path) -> None:
    clock = FakeClock()
    settler = Settler(1.0, max_backoff=8.0, clock=clock)
    path = write(tmp_path / "a.png", b"x")
    settler.offer(path)
    waits = []
    for step in range(5):
        clock.now += 10
        with open(path, "ab") as stream:  # still growing at every look
            stream.write(b"more")
        os.utime(path, ns=(0, int((1e9 + step) * 1e9)))
        assert settler.ready() == []
        waits.append(settler.next_due())
    assert path in settler
    assert waits == sorted(waits) and waits[-1] == pytest.approx(8.0)
    clock.now += 10
    assert settler.ready() == [path]


def test_settler_forgets_vanished_files(tmp_path: Path) -> None:
    clock = FakeClock()
    settler = Settler(1.0, clock=clock)
    path = write(tmp_path / "a.png")
    settler.offer(path)
    path.unlink()
    clock.now += 2
    assert settler.ready() == []
    assert len(settler) == 0


def test_settler_does_not_take_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read files without read permission")
    clock = FakeClock()
    settler = Settler(1.0, clock=clock)
    path = write(tmp_path / "a.png")
    path.chmod(0)
    settler.offer(path)
    clock.now += 2
    assert settler.ready() == []
    path.chmod(0o644)
    clock.now += 2
    assert settler.ready() == [path]


def test_inbox_hands_out_slowly_written_file_only_when_complete(tmp_path: Path) -> None:
    """A background thread writes a file in pieces; the watcher must not hand it out early."""
    inbox = Inbox(tmp_path, settle_seconds=0.3, rescan_seconds=0.2)
    inbox.start()
    target = tmp_path / "slow.png"
    chunks = [os.urandom(4096) for _ in range(8)]

    def slow_writer() -> None:
        with open(target, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
                stream.flush()
                time.sleep(0.1)

    writer = threading.Thread(target=slow_writer)
    try:
        writer.start()
        handed: list[tuple[Path, bytes]] = []
        deadline = time.monotonic() + 10
        while not handed and time.monotonic() < deadline:
            handed = [(p, p.read_bytes()) for p in inbox.poll()]
            time.sleep(0.05)
        writer.join()
    finally:
        inbox.stop()
    assert [p for p, _ in handed] == [target]
    assert handed[0][1] == b"".join(chunks)
    assert inbox.poll() == []  # not handed out twice


def test_inbox_processes_files_present_at_startup_and_new_ones(tmp_path: Path) -> None:
    write(tmp_path / "early.png")
    write(tmp_path / ".hidden.png")
    inbox = Inbox(tmp_path, settle_seconds=0.1, rescan_seconds=60)
    inbox.start()
    try:
        seen: set[str] = set()
        write(tmp_path / "late.png")
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            seen |= {p.name for p in inbox.poll()}
            time.sleep(0.05)
    finally:
        inbox.stop()
    assert seen == {"early.png", "late.png"}


def test_inbox_polling_observer_sees_new_file(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, settle_seconds=0.1, rescan_seconds=60, polling=True)
    inbox.start()
    try:
        inbox.poll()  # initial rescan of the empty folder
        write(tmp_path / "nfs.png")
        seen: list[Path] = []
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            seen = inbox.poll()
            time.sleep(0.05)
    finally:
        inbox.stop()
    assert [p.name for p in seen] == ["nfs.png"]


def test_inbox_hands_out_replaced_file_again(tmp_path: Path) -> None:
    clock = FakeClock()
    inbox = Inbox(tmp_path, settle_seconds=1.0, rescan_seconds=0.0, clock=clock)
    path = write(tmp_path / "scan.png", b"first")
    inbox.poll()
    clock.now += 2
    assert inbox.poll() == [path]
    clock.now += 2
    assert inbox.poll() == []  # still there, unchanged: already handed out
    write(path, b"second, longer")
    inbox.poll()
    clock.now += 2
    assert inbox.poll() == [path]


def test_move_never_overwrites(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first = move_no_clobber(write(tmp_path / "in" / "scan.png", b"1"), dest)
    second = move_no_clobber(write(tmp_path / "in" / "scan.png", b"2"), dest)
    third = move_no_clobber(write(tmp_path / "in" / "noext", b"3"), dest)
    fourth = move_no_clobber(write(tmp_path / "in" / "noext", b"4"), dest)
    assert first.name == "scan.png" and first.read_bytes() == b"1"
    assert second.name == "scan (1).png" and second.read_bytes() == b"2"
    assert (third.name, fourth.name) == ("noext", "noext (1)")
    assert list((tmp_path / "in").iterdir()) == []


def test_concurrent_moves_of_same_name_all_survive(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    sources = [write(tmp_path / f"in{i}" / "scan.png", str(i).encode()) for i in range(16)]
    barrier = threading.Barrier(len(sources))
    results: list[Path] = []

    def mover(source: Path) -> None:
        barrier.wait()
        results.append(move_no_clobber(source, dest))

    threads = [threading.Thread(target=mover, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 16
    assert sorted(p.read_bytes() for p in dest.iterdir()) == sorted(
        str(i).encode() for i in range(16)
    )


def test_move_across_filesystems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to move across")
    source = write(shm / f"ocrd-test-{os.getpid()}.png", b"payload")
    target = move_no_clobber(source, tmp_path / "dest")
    assert target.read_bytes() == b"payload"
    assert not source.exists()
    assert [p.name for p in target.parent.iterdir()] == [source.name]


def test_processed_goes_to_dated_folder(tmp_path: Path) -> None:
    when = datetime(2024, 3, 7, 12, 0)
    target = move_to_processed(write(tmp_path / "scan.png"), tmp_path / "processed", when)
    assert target == tmp_path / "processed" / "2024" / "03" / "07" / "scan.png"


def test_failed_file_gets_reason_and_retry_puts_it_back(tmp_path: Path) -> None:
    inbox, failed = tmp_path / "inbox", tmp_path / "failed"
    write(failed / "scan.png", b"old failure")  # an earlier failure of the same name
    write(failed / ("scan.png" + ERROR_SUFFIX), b"older reason")
    target = move_to_failed(write(inbox / "scan.png", b"new"), failed, "not an image")
    assert target.name == "scan (1).png"
    assert (failed / "scan (1).png.error.txt").read_text() == "not an image\n"
    assert (failed / "scan.png.error.txt").read_text() == "older reason"

    back = retry_failed(failed, inbox, names=["scan (1).png"])
    assert back == [inbox / "scan (1).png"] and back[0].read_bytes() == b"new"
    assert sorted(p.name for p in failed.iterdir()) == ["scan.png", "scan.png.error.txt"]

    everything = retry_failed(failed, inbox)
    assert [p.name for p in everything] == ["scan.png"]
    assert list(failed.iterdir()) == []


def test_settler_waits_for_a_writer_to_close_after_writing(tmp_path: Path) -> None:
    clock = FakeClock()
    settler = Settler(1.0, clock=clock)
    path = write(tmp_path / "a.png", b"x")
    settler.offer(path)
    settler.written(path)  # inotify IN_MODIFY: a writer at work, the file still open
    clock.now += 5
    assert settler.ready() == []  # unchanged for long, but not closed yet
    settler.closed(path)  # IN_CLOSE_WRITE
    clock.now += 5
    assert settler.ready() == [path]


def test_settler_takes_a_file_whose_writer_never_closes_after_the_grace_time(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    settler = Settler(1.0, clock=clock)
    path = write(tmp_path / "a.png", b"x")
    settler.offer(path)
    settler.written(path)
    clock.now += WRITER_GRACE_SECONDS - 1
    assert settler.ready() == []
    clock.now += 31
    assert settler.ready() == [path]


def _assert_nothing_handed_for(inbox: Inbox, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert inbox.poll() == []
        time.sleep(0.05)


def _first_handed(inbox: Inbox, timeout: float = 5.0) -> list[Path]:
    """What the inbox hands over first, polled until it hands something or `timeout`."""
    handed: list[Path] = []
    deadline = time.monotonic() + timeout
    while not handed and time.monotonic() < deadline:
        handed = inbox.poll()
        time.sleep(0.05)
    return handed


def test_inbox_waits_for_a_real_writer_that_pauses_with_the_file_open(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, settle_seconds=0.1, rescan_seconds=60)
    inbox.start()
    target = tmp_path / "paused.png"
    try:
        with open(target, "wb") as stream:
            stream.write(b"first half")
            stream.flush()
            _assert_nothing_handed_for(inbox, 1.0)  # ten settle times, open, not changing
            stream.write(b", second half")
        handed = _first_handed(inbox)
    finally:
        inbox.stop()
    assert handed == [target]
    assert target.read_bytes() == b"first half, second half"


def test_reading_inbox_files_raises_no_inotify_events(tmp_path: Path) -> None:
    """Reads (the daemon's own hash and decode) must not wake the intake: IN_OPEN and
    IN_CLOSE_NOWRITE were two events per read, most of a burst's intake work."""
    folder = tmp_path / "inbox"
    path = write(folder / "scan.png")
    inbox = Inbox(folder, settle_seconds=0.1, rescan_seconds=60)
    inbox.start()
    try:
        time.sleep(0.3)
        for _ in range(5):
            path.read_bytes()
        time.sleep(0.5)  # watchdog's thread delivers what inotify reported
        assert inbox._events.qsize() == 0
        os.replace(write(tmp_path / "new.png"), folder / "new.png")
        deadline = time.monotonic() + 5
        while inbox._events.qsize() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert inbox._events.qsize() > 0  # a file moved in still is
    finally:
        inbox.stop()


def test_reader_trusts_intakes_hash_only_for_the_very_same_unchanged_file(tmp_path: Path) -> None:
    from ocrd.service.intake_loop import Intake, file_identity
    from ocrd.store.documents import digest_file

    intake = Intake.__new__(Intake)  # only its memory of hashed files
    path = write(tmp_path / "scan.png", b"first")
    sha = digest_file(path).sha256

    intake.hashed = {path: (file_identity(path), sha)}
    assert intake.already_hashed(path, sha)
    assert not intake.already_hashed(path, sha)  # used once, then forgotten

    intake.hashed = {path: (file_identity(path), sha)}
    assert not intake.already_hashed(path, "0" * 64)  # another content was claimed

    # Rewritten with the same size and its mtime set back: ctime still tells.
    stat = path.stat()
    intake.hashed = {path: (file_identity(path), sha)}
    time.sleep(0.01)
    path.write_bytes(b"other")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not intake.already_hashed(path, sha)

    # Replaced by another file under the same name.
    intake.hashed = {path: (file_identity(path), sha)}
    os.replace(write(tmp_path / "new.png", b"first"), path)
    assert not intake.already_hashed(path, sha)

    intake.hashed = {path: (file_identity(path), sha)}
    path.unlink()
    assert not intake.already_hashed(path, sha)  # gone: the reader's own look says so


def test_inbox_waits_for_a_writer_that_creates_a_file_and_pauses_before_writing(
    tmp_path: Path,
) -> None:
    inbox = Inbox(tmp_path, settle_seconds=0.1, rescan_seconds=60)
    inbox.start()
    target = tmp_path / "late.png"
    try:
        with open(target, "wb") as stream:
            _assert_nothing_handed_for(inbox, 1.0)  # ten settle times, empty and open
            stream.write(b"content")
        handed = _first_handed(inbox)
    finally:
        inbox.stop()
    assert handed == [target]
