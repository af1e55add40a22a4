"""Intake: find files in the inbox, wait until they have settled, hash them, and move them out.

Nothing here knows about models or the database. The service asks `Inbox` for files that are
ready (unchanged for `settle_seconds` and openable), then, once the store has the outcome, calls
`move_to_processed` / `move_to_failed`. Moves never overwrite: a second `scan.png` becomes
`scan (1).png`. `retry_failed` puts failed files back into the inbox.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

# Names that scanners, sync tools and office suites leave behind while a file is incomplete,
# plus OS litter. Matched against every path component below the inbox.
BUILTIN_IGNORES: tuple[str, ...] = (
    ".*",
    "*.part",
    "*.tmp",
    "~$*",
    ".DS_Store",
    "Thumbs.db",
    "@eaDir",
)
ERROR_SUFFIX = ".error.txt"
_COPY_CHUNK = 1 << 20


def is_ignored(path: Path, inbox: Path, patterns: Iterable[str] = ()) -> bool:
    """True when any component of `path` below `inbox` matches a built-in or user pattern."""
    all_patterns = (*BUILTIN_IGNORES, *patterns)
    try:
        parts = path.relative_to(inbox).parts
    except ValueError:
        parts = (path.name,)
    return any(fnmatch.fnmatchcase(part, pattern) for part in parts for pattern in all_patterns)


def scan_inbox(
    inbox: Path, *, recursive: bool = False, ignore: Iterable[str] = ()
) -> Iterator[Path]:
    """Regular files in the inbox (optionally below it), skipping ignored names and directories."""
    patterns = tuple(ignore)
    stack = [inbox]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            path = Path(entry.path)
            if is_ignored(path, inbox, patterns):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(path)
                elif entry.is_file(follow_symlinks=True):
                    yield path
            except OSError:
                continue  # vanished or unreadable entry: the next rescan decides


def _opens(path: Path) -> bool:
    """A file locked by its writer (SMB) or without read permission is not ready yet."""
    try:
        with open(path, "rb") as stream:
            stream.read(1)
        return True
    except OSError:
        return False


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    stable_since: float
    next_check: float
    backoff: float


class Settler:
    """Decides when a file has stopped changing.

    A file is ready once two looks at least `settle_seconds` apart see the same size and mtime and
    it opens for reading. While it keeps changing it is looked at again with doubling back-off (up
    to `max_backoff`); it is only ever forgotten when it disappears.
    """

    def __init__(
        self,
        settle_seconds: float = 1.0,
        *,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.max_backoff = max(max_backoff, settle_seconds)
        self._clock = clock
        self._candidates: dict[Path, _Candidate] = {}

    def __len__(self) -> int:
        return len(self._candidates)

    def __contains__(self, path: Path) -> bool:
        return path in self._candidates

    def offer(self, path: Path) -> None:
        """Start watching `path` (no-op if already watched)."""
        if path in self._candidates:
            return
        try:
            stat = path.stat()
        except OSError:
            return
        now = self._clock()
        self._candidates[path] = _Candidate(
            size=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            stable_since=now,
            next_check=now + self.settle_seconds,
            backoff=self.settle_seconds,
        )

    def forget(self, path: Path) -> None:
        self._candidates.pop(path, None)

    def ready(self) -> list[Path]:
        """Files that have settled since the last call; they are no longer watched."""
        now = self._clock()
        settled = []
        for path, cand in list(self._candidates.items()):
            if cand.next_check > now:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                del self._candidates[path]
                continue
            except OSError:
                self._back_off(cand, now)
                continue
            if (stat.st_size, stat.st_mtime_ns) != (cand.size, cand.mtime_ns):
                cand.size, cand.mtime_ns, cand.stable_since = stat.st_size, stat.st_mtime_ns, now
                self._back_off(cand, now)
            elif now - cand.stable_since >= self.settle_seconds and _opens(path):
                del self._candidates[path]
                settled.append(path)
            else:
                self._back_off(cand, now)
        return settled

    def next_due(self) -> float | None:
        """Seconds until the earliest pending check (None when nothing is watched)."""
        if not self._candidates:
            return None
        earliest = min(c.next_check for c in self._candidates.values())
        return max(0.0, earliest - self._clock())

    def _back_off(self, cand: _Candidate, now: float) -> None:
        # Never check sooner than the file could have settled; grow the wait while it changes.
        cand.next_check = max(now + cand.backoff, cand.stable_since + self.settle_seconds)
        cand.backoff = min(cand.backoff * 2, self.max_backoff)


class _EventForwarder(FileSystemEventHandler):
    def __init__(self, sink: queue.SimpleQueue[Path]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            # A folder moved into the inbox brings files without per-file events: rescan soon.
            if event.event_type in ("created", "moved"):
                self._sink.put(Path(os.fsdecode(getattr(event, "dest_path", "") or event.src_path)))
            return
        if event.event_type in ("created", "modified", "closed", "moved"):
            target = event.dest_path if event.event_type == "moved" else event.src_path
            self._sink.put(Path(os.fsdecode(target)))


class Inbox:
    """Watches one inbox folder: filesystem events plus a periodic full rescan, then settling.

    `poll()` returns files that are ready to be read. Files already handed out are remembered by
    (size, mtime) so that a rescan does not hand them out again while the daemon works on them;
    call `release(path)` once a file has left the inbox.
    """

    def __init__(
        self,
        inbox: Path,
        *,
        recursive: bool = False,
        ignore: Iterable[str] = (),
        settle_seconds: float = 1.0,
        rescan_seconds: float = 30.0,
        polling: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = Path(inbox)
        self.recursive = recursive
        self.ignore = tuple(ignore)
        self.rescan_seconds = rescan_seconds
        self.polling = polling
        self.settler = Settler(settle_seconds, clock=clock)
        self._clock = clock
        self._events: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._handed_out: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._next_rescan = 0.0  # rescan at once: files present at start-up are processed
        self._observer: Observer | PollingObserver | None = None

    def start(self) -> None:
        observer = PollingObserver(timeout=1.0) if self.polling else Observer()
        observer.schedule(_EventForwarder(self._events), str(self.inbox), recursive=self.recursive)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    @property
    def watching(self) -> int:
        return len(self.settler)

    def poll(self) -> list[Path]:
        """Take in events (and rescan when due); return files that have settled."""
        now = self._clock()
        rescan_needed = now >= self._next_rescan
        while True:
            try:
                path = self._events.get_nowait()
            except queue.Empty:
                break
            if path.is_dir():
                rescan_needed = True
            else:
                self._consider(path)
        if rescan_needed:
            self.rescan()
        with self._lock:
            ready = [p for p in self.settler.ready() if p not in self._handed_out]
            for path in ready:
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    self._handed_out[path] = (stat.st_size, stat.st_mtime_ns)
        return ready

    def rescan(self) -> None:
        self._next_rescan = self._clock() + self.rescan_seconds
        present = set()
        for path in scan_inbox(self.inbox, recursive=self.recursive, ignore=self.ignore):
            present.add(path)
            self._consider(path)
        with self._lock:
            for path in [p for p in self._handed_out if p not in present]:
                del self._handed_out[path]  # gone without release(): nothing to remember

    def release(self, path: Path) -> None:
        """Forget a handed-out file (it left the inbox, or must be looked at again)."""
        with self._lock:
            self._handed_out.pop(path, None)

    def _consider(self, path: Path) -> None:
        if path.parent != self.inbox and not self.recursive:
            return
        if is_ignored(path, self.inbox, self.ignore):
            return
        with self._lock:
            seen = self._handed_out.get(path)
        if seen is not None:
            try:
                stat = path.stat()
            except OSError:
                return
            if (stat.st_size, stat.st_mtime_ns) == seen:
                return
            self.release(path)  # replaced by a new file of the same name
        self.settler.offer(path)


# --- moving files out of (and back into) the inbox ---------------------------------------------


def _numbered(name: str, n: int) -> str:
    """'scan.png', 3 -> 'scan (3).png' (a leading-dot or extension-less name just gets a suffix)."""
    stem, dot, ext = name.rpartition(".")
    if not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}){dot}{ext}"


def candidate_names(name: str) -> Iterator[str]:
    yield name
    n = 1
    while True:
        yield _numbered(name, n)
        n += 1


def move_no_clobber(source: Path, folder: Path, name: str | None = None) -> Path:
    """Move `source` into `folder` under a name no other file has, and return the new path.

    Same filesystem: a hard link (fails atomically if the name is taken, even against another
    process choosing the same name) then unlink of the source; where links are unsupported, an
    existence check plus rename. Across filesystems: copy to a hidden temp name in the target
    folder, fsync, then the same no-clobber step, then remove the source.
    """
    folder.mkdir(parents=True, exist_ok=True)
    origin, staged = source, None
    try:
        for candidate in candidate_names(name or source.name):
            target = folder / candidate
            try:
                _place(origin, target)
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno != errno.EXDEV or staged is not None:
                    raise
                origin = staged = _stage_copy(source, folder)
                try:
                    _place(origin, target)
                except FileExistsError:
                    continue
            if staged is not None:
                source.unlink()
            return target
    finally:
        if staged is not None:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
    raise AssertionError("unreachable: candidate_names is endless")


def _place(origin: Path, target: Path) -> None:
    """Atomically give `origin` the name `target`, refusing to replace an existing file."""
    try:
        os.link(origin, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # Filesystem without hard links (some SMB/FAT mounts): best effort check, then rename.
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        os.rename(origin, target)
        return
    os.unlink(origin)


def _stage_copy(source: Path, folder: Path) -> Path:
    staged = folder / f".ocrd-{os.getpid()}-{threading.get_ident()}-{source.name}.part"
    with open(source, "rb") as src, open(staged, "wb") as dst:
        shutil.copyfileobj(src, dst, _COPY_CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    shutil.copystat(source, staged)
    return staged


def processed_folder(processed: Path, when: datetime | None = None) -> Path:
    when = when or datetime.now().astimezone()
    return processed / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}"


def move_to_processed(source: Path, processed: Path, when: datetime | None = None) -> Path:
    """Move a done file to processed/YYYY/MM/DD/ without overwriting anything."""
    return move_no_clobber(source, processed_folder(processed, when))


def move_to_failed(source: Path, failed: Path, reason: str) -> Path:
    """Move a failed file to failed/ and write the reason beside it as `<name>.error.txt`.

    The reason file is written first under a temp name and renamed into place after the move,
    so a crash never leaves a failed file without its reason for long (a retry re-creates it).
    """
    target = move_no_clobber(source, failed)
    error_path = target.with_name(target.name + ERROR_SUFFIX)
    temp = error_path.with_name(f".{error_path.name}.{os.getpid()}.tmp")
    temp.write_text(reason.rstrip() + "\n", encoding="utf-8")
    os.replace(temp, error_path)
    return target


def failed_files(failed: Path) -> list[Path]:
    """Failed files (not their reason files), oldest first."""
    if not failed.is_dir():
        return []
    files = [
        p
        for p in failed.iterdir()
        if p.is_file() and not p.name.endswith(ERROR_SUFFIX) and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def retry_failed(failed: Path, inbox: Path, names: Iterable[str] = ()) -> list[Path]:
    """Move failed files (all, or those named) back into the inbox; drop their reason files.

    Returns the new inbox paths. The reason file is removed only after the move succeeded.
    """
    wanted = set(names)
    moved = []
    for path in failed_files(failed):
        if wanted and path.name not in wanted:
            continue
        target = move_no_clobber(path, inbox)
        error_path = path.with_name(path.name + ERROR_SUFFIX)
        with contextlib.suppress(FileNotFoundError):
            error_path.unlink()
        moved.append(target)
    return moved
