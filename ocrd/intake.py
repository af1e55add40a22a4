"""Intake: find files in the inbox, wait until they have settled, hash them, and move them out.

Nothing here knows about models or the database. The service asks `Inbox` for files that are
ready (unchanged for `settle_seconds`, closed by their writer where inotify says so, and
openable), then, once the store has the outcome, calls `move_to_processed` / `move_to_failed`.
Moves never overwrite: a second `scan.png` becomes `scan (1).png`, shortened where the number
would make the name longer than the file system allows. `retry_failed` puts failed files back
into the inbox.

What lands in an inbox is not always a file: only regular files are taken (checked with
`lstat`, opened non-blocking). FIFOs, sockets and devices are reported once and left alone;
symbolic links are not followed and go to failed/ with the reason (setting `symlinks =
"inside-inbox"` reads links whose target is a regular file inside the inbox). A name that is
not valid UTF-8 is renamed in place (each bad byte as %XX) before it is taken, so the store
and the log can hold it.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import logging
import os
import queue
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from ocrd.files import NotRegularFileError, kind_of, open_regular
from ocrd.logsafe import Once, printable

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
NAME_MAX = 255  # bytes per path component (ext4, xfs, btrfs, tmpfs...)
TEMP_PREFIX = ".ocrd-"
STALE_TEMP_SECONDS = 60.0  # a temp copy of a dead process untouched this long is left over
ORPHAN_TEMP_SECONDS = 24 * 3600.0  # ... of any process (another host's, a reused pid)
WRITER_GRACE_SECONDS = 30.0  # a file written to and never closed: taken after this anyway
# The inotify events the inbox asks for. Not IN_OPEN / IN_CLOSE_NOWRITE: every read (ours
# included: the hash, the decode) raised two events per file, most of the daemon's
# intake work in a burst; nor deletions and folder-modified events, which nothing uses.
# A writer shows itself by IN_MODIFY and lets go with IN_CLOSE_WRITE.
WATCHED_EVENTS = [
    FileCreatedEvent, FileMovedEvent, FileModifiedEvent, FileClosedEvent,
    DirCreatedEvent, DirMovedEvent,
]  # fmt: skip
_COPY_CHUNK = 1 << 20


@functools.lru_cache(maxsize=32)
def _ignore_matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """All patterns as one regex (fnmatchcase compiles each to `fnmatch.translate`): a burst
    of files ran fnmatch ~7 times per path component per inotify event."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


def is_ignored(path: Path, inbox: Path, patterns: Iterable[str] = ()) -> bool:
    """True when any component of `path` below `inbox` matches a built-in or user pattern."""
    match = _ignore_matcher((*BUILTIN_IGNORES, *patterns))
    if path.parent == inbox:  # the usual case, without relative_to's parsing
        return match(path.name) is not None
    try:
        parts = path.relative_to(inbox).parts
    except ValueError:
        parts = (path.name,)
    return any(match(part) for part in parts)


def scan_inbox(
    inbox: Path, *, recursive: bool = False, ignore: Iterable[str] = ()
) -> Iterator[Path]:
    """Entries of the inbox (optionally below it) that are not directories: regular files,
    and links and special files for `Inbox` to turn away. Ignored names are skipped."""
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
                else:
                    yield path
            except OSError:
                continue  # vanished or unreadable entry: the next rescan decides


def _open_problem(path: Path) -> str | None:
    """None when the file opens and reads; else why not (locked by its writer on SMB, no read
    permission, replaced by something that is not a regular file)."""
    try:
        with open_regular(path) as stream:
            stream.read(1)
        return None
    except NotRegularFileError as exc:
        return exc.strerror or "not a regular file"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    stable_since: float
    next_check: float
    backoff: float


class Settler:
    """Decides when a file has stopped changing.

    A file is ready once two looks at least `settle_seconds` apart see the same size and mtime,
    its writer has closed it (where inotify reports writes and closes: `written` / `closed`),
    and it opens for reading. While it keeps changing it is looked at again with doubling
    back-off (up to `max_backoff`); it is only ever forgotten when it disappears. A file that
    does not open (no permission, locked) is logged once and kept in `unreadable`.
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
        self._open: dict[Path, float] = {}  # inotify: written to, not closed yet (since when)
        self.unreadable: dict[Path, str] = {}

    def __len__(self) -> int:
        return len(self._candidates)

    def __contains__(self, path: Path) -> bool:
        return path in self._candidates

    def offer(self, path: Path) -> None:
        """Start watching `path` (no-op if already watched)."""
        if path in self._candidates:
            return
        try:
            stat_result = path.stat()
        except OSError:
            return
        now = self._clock()
        self._candidates[path] = _Candidate(
            size=stat_result.st_size,
            mtime_ns=stat_result.st_mtime_ns,
            stable_since=now,
            next_check=now + self.settle_seconds,
            backoff=self.settle_seconds,
        )

    def written(self, path: Path) -> None:
        """inotify saw a write: until a close after writing follows, its writer has it open."""
        self._open.setdefault(path, self._clock())

    def closed(self, path: Path) -> None:
        """inotify saw the file closed after writing."""
        self._open.pop(path, None)

    def poke(self, path: Path) -> None:
        """Something happened to a watched file (chmod, a write, a close): look again soon
        instead of at the end of its back-off."""
        cand = self._candidates.get(path)
        if cand is not None:
            cand.backoff = self.settle_seconds
            cand.next_check = min(cand.next_check, self._clock() + self.settle_seconds)

    def forget(self, path: Path) -> None:
        self._candidates.pop(path, None)
        self.unreadable.pop(path, None)
        self._open.pop(path, None)

    def ready(self) -> list[Path]:
        """Files that have settled since the last call; they are no longer watched."""
        now = self._clock()
        settled = []
        for path, cand in list(self._candidates.items()):
            if cand.next_check > now:
                continue
            try:
                stat_result = path.stat()
            except FileNotFoundError:
                self.forget(path)
                continue
            except OSError:
                self._back_off(cand, now)
                continue
            if (stat_result.st_size, stat_result.st_mtime_ns) != (cand.size, cand.mtime_ns):
                cand.size, cand.mtime_ns = stat_result.st_size, stat_result.st_mtime_ns
                cand.stable_since = now
                self._back_off(cand, now)
            elif now - cand.stable_since < self.settle_seconds or self._still_open(path, now):
                self._back_off(cand, now)
            elif self._readable(path):
                self.forget(path)
                settled.append(path)
            elif path in self._candidates:
                self._back_off(cand, now)
        return settled

    def _still_open(self, path: Path, now: float) -> bool:
        """Written to and not closed yet, for less than the grace time."""
        since = self._open.get(path)
        if since is None:
            return False
        if now - since >= WRITER_GRACE_SECONDS:
            del self._open[path]  # a missed close, or a writer that never lets go
            return False
        return True

    def _readable(self, path: Path) -> bool:
        problem = _open_problem(path)
        if problem is None:
            if self.unreadable.pop(path, None) is not None:
                log.info("%s can be read now", printable(path))
            return True
        if problem.startswith("not a regular file"):
            self.forget(path)  # swapped for a FIFO or device: the next look turns it away
            return False
        if path not in self.unreadable:
            log.warning("cannot read %s: %s; will retry", printable(path), problem)
        self.unreadable[path] = problem
        return False

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
    """Forwards (path, what) from watchdog's thread: what is 'dir', 'write', 'close' or 'seen'."""

    def __init__(self, sink: queue.SimpleQueue[tuple[Path, str]]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if event.is_directory:
            # A folder moved into the inbox brings files without per-file events: rescan soon.
            if kind in ("created", "moved"):
                target = getattr(event, "dest_path", "") or event.src_path
                self._sink.put((Path(os.fsdecode(target)), "dir"))
            return
        if kind == "moved":
            self._sink.put((Path(os.fsdecode(event.dest_path)), "seen"))
        elif kind == "modified":  # IN_MODIFY: a writer at work
            self._sink.put((Path(os.fsdecode(event.src_path)), "write"))
        elif kind == "closed":  # IN_CLOSE_WRITE
            self._sink.put((Path(os.fsdecode(event.src_path)), "close"))
        elif kind == "created":  # a moved-in file arrives as "created" too
            self._sink.put((Path(os.fsdecode(event.src_path)), "seen"))


def classify(path: Path, inbox: Path, symlinks: str = "refuse") -> tuple[str, str | None]:
    """What an inbox entry is: ('file', None) to read, ('dir', None), ('gone', None), or
    ('link' | 'special', reason) to turn away. `symlinks='inside-inbox'` lets a link through
    when its target is a regular file inside the inbox."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "gone", None
    except OSError as exc:
        return "special", f"cannot look at it: {exc.strerror}"
    if stat.S_ISREG(mode):
        return "file", None
    if stat.S_ISDIR(mode):
        return "dir", None
    if not stat.S_ISLNK(mode):
        return "special", f"not a regular file ({kind_of(mode)})"
    if symlinks != "inside-inbox":
        return "link", (
            'symbolic link, not followed (setting symlinks = "inside-inbox" reads links to '
            "files inside the inbox)"
        )
    try:
        target = path.resolve(strict=True)
        target_mode = target.stat().st_mode
    except (OSError, RuntimeError):
        return "link", "symbolic link to nothing (broken or a loop)"
    if not _nested(target, inbox.resolve()):
        return "link", "symbolic link to a file outside the inbox, not followed"
    if not stat.S_ISREG(target_mode):
        return "link", f"symbolic link to a {kind_of(target_mode)}, not followed"
    return "file", None


def _is_empty(path: Path) -> bool:
    try:
        return os.lstat(path).st_size == 0
    except OSError:
        return False


def _nested(inner: Path, outer: Path) -> bool:
    return outer in inner.parents


def is_utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def utf8_name(name: str) -> str:
    """A name with every byte that was not UTF-8 (a surrogate from os.fsdecode) as %XX."""
    return "".join(
        f"%{ord(c) - 0xDC00:02X}" if 0xDC80 <= ord(c) <= 0xDCFF else c
        for c in name
        if not (0xD800 <= ord(c) < 0xDC80 or 0xDD00 <= ord(c) < 0xE000)
    )


class Inbox:
    """Watches one inbox folder: filesystem events plus a periodic full rescan, then settling.

    `poll()` returns files that are ready to be read. Files already handed out are remembered by
    (size, mtime) so that a rescan does not hand them out again while the daemon works on them;
    call `release(path)` once a file has left the inbox. Entries that are not regular files are
    reported once; symbolic links are moved to `failed` (when given) with their reason.
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
        failed: Path | None = None,
        symlinks: str = "refuse",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = Path(inbox)
        self.recursive = recursive
        self.ignore = tuple(ignore)
        self.rescan_seconds = rescan_seconds
        self.polling = polling
        self.failed = failed
        self.symlinks = symlinks
        self.settler = Settler(settle_seconds, clock=clock)
        self._clock = clock
        self._events: queue.SimpleQueue[tuple[Path, str]] = queue.SimpleQueue()
        self._handed_out: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._next_rescan = 0.0  # rescan at once: files present at start-up are processed
        self._observer: Observer | PollingObserver | None = None
        self._reported = Once()
        self.turned_away: dict[Path, str] = {}  # special files left in the inbox, and why

    def start(self) -> None:
        observer = PollingObserver(timeout=1.0) if self.polling else Observer()
        observer.schedule(
            _EventForwarder(self._events), str(self.inbox), recursive=self.recursive,
            event_filter=WATCHED_EVENTS,
        )  # fmt: skip
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

    @property
    def unreadable(self) -> dict[Path, str]:
        """Settled files that do not open (no permission...): path -> reason."""
        return dict(self.settler.unreadable)

    def poll(self) -> list[Path]:
        """Take in events (and rescan when due); return files that have settled."""
        now = self._clock()
        rescan_needed = now >= self._next_rescan
        while True:
            try:
                path, what = self._events.get_nowait()
            except queue.Empty:
                break
            if what == "dir":
                rescan_needed = True
                continue
            if what == "write" and not self.polling:
                self.settler.written(path)
            elif what == "seen" and not self.polling and _is_empty(path):
                # Created and not written yet: its writer may hold it open before the first
                # write (IN_OPEN is not asked for); IN_CLOSE_WRITE, a write or the grace ends it.
                self.settler.written(path)
            elif what == "close":
                self.settler.closed(path)
            self.settler.poke(path)
            self._consider(path)
        if rescan_needed:
            self.rescan()
        ready = []
        for path in self.settler.ready():
            path = self._with_utf8_name(path)
            with self._lock:
                if path is None or path in self._handed_out:
                    continue
                with contextlib.suppress(OSError):
                    stat_result = path.stat()
                    self._handed_out[path] = (stat_result.st_size, stat_result.st_mtime_ns)
                    ready.append(path)
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
        for path in [p for p in self.turned_away if p not in present]:
            del self.turned_away[path]
            self._reported.forget(path)

    def release(self, path: Path) -> None:
        """Forget a handed-out file (it left the inbox, or must be looked at again)."""
        with self._lock:
            self._handed_out.pop(path, None)

    def settle_again(self, path: Path) -> None:
        """A handed-out file turned out to be still changing: watch it settle once more."""
        self.release(path)
        self.settler.forget(path)
        self.settler.offer(path)

    def _consider(self, path: Path) -> None:
        if path.parent != self.inbox and not self.recursive:
            return
        if is_ignored(path, self.inbox, self.ignore):
            return
        kind, reason = classify(path, self.inbox, self.symlinks)
        if kind in ("gone", "dir"):
            return
        if kind != "file":
            self._turn_away(path, kind, reason or "not a regular file")
            return
        with self._lock:
            seen = self._handed_out.get(path)
        if seen is not None:
            try:
                stat_result = path.stat()
            except OSError:
                return
            if (stat_result.st_size, stat_result.st_mtime_ns) == seen:
                return
            self.release(path)  # replaced by a new file of the same name
        self.settler.offer(path)

    def _turn_away(self, path: Path, kind: str, reason: str) -> None:
        self.settler.forget(path)
        if kind == "link" and self.failed is not None:
            try:
                target = move_to_failed(path, self.failed, reason)
            except FileNotFoundError:
                return
            except OSError as exc:
                if self._reported.first(path):
                    log.error("cannot move %s to failed/: %s", printable(path), exc.strerror)
                return
            log.warning("failed %s: %s (moved to %s)", printable(path), reason, printable(target))
            return
        self.turned_away[path] = reason
        if self._reported.first(path):
            log.warning("left %s in the inbox: %s", printable(path), reason)

    def _with_utf8_name(self, path: Path) -> Path | None:
        """The path to hand out: renamed first when its name is not valid UTF-8."""
        if is_utf8(path):
            return path
        try:
            relative = path.relative_to(self.inbox)
        except ValueError:
            relative = Path(path.name)
        fixed = Path(*(utf8_name(part) for part in relative.parts))
        try:
            target = move_no_clobber(path, self.inbox / fixed.parent, fixed.name)
        except OSError as exc:
            if self._reported.first(path):
                log.error("cannot rename %s (not valid UTF-8): %s", printable(path), exc.strerror)
            return None
        log.warning("renamed %s to %s: the name was not valid UTF-8", printable(path), target.name)
        return target


# --- moving files out of (and back into) the inbox ---------------------------------------------


def fit_name(name: str, reserve: int = 0) -> str:
    """`name` shortened (its stem, at a character boundary) so that it plus `reserve` more
    bytes fits in NAME_MAX bytes; the extension is kept."""
    budget = NAME_MAX - reserve
    raw = os.fsencode(name)
    if len(raw) <= budget:
        return name
    stem, dot, ext = name.rpartition(".")
    if not stem or len(os.fsencode(ext)) > 16:
        stem, dot, ext = name, "", ""
    tail = os.fsencode(dot + ext)
    cut = os.fsencode(stem)[: max(1, budget - len(tail))]
    decoded = cut.decode("utf-8", "ignore") if is_utf8(Path(name)) else os.fsdecode(cut)
    return decoded + dot + ext


def _numbered(name: str, n: int, reserve: int = 0) -> str:
    """'scan.png', 3 -> 'scan (3).png' (a leading-dot or extension-less name just gets a suffix),
    shortened to fit NAME_MAX with `reserve` bytes to spare."""
    suffix = f" ({n})"
    stem, dot, ext = name.rpartition(".")
    if not stem:
        return fit_name(name, reserve + len(suffix)) + suffix
    short = fit_name(stem, reserve + len(suffix) + len(os.fsencode(dot + ext)))
    return f"{short}{suffix}{dot}{ext}"


def candidate_names(name: str, reserve: int = 0) -> Iterator[str]:
    """name, 'name (1)', 'name (2)'..., each short enough to leave `reserve` bytes of NAME_MAX
    (for a sidecar suffix such as ERROR_SUFFIX)."""
    yield fit_name(name, reserve)
    n = 1
    while True:
        yield _numbered(name, n, reserve)
        n += 1


def move_no_clobber(
    source: Path, folder: Path, name: str | None = None, *, reserve: int = 0
) -> Path:
    """Move `source` into `folder` under a name no other file has, and return the new path.

    Same filesystem: a hard link (fails atomically if the name is taken, even against another
    process choosing the same name) then unlink of the source; where links are unsupported, an
    existence check plus rename. Across filesystems: copy to a hidden temp name in the target
    folder, fsync, then the same no-clobber step, then remove the source. A symbolic link is
    moved as the link, never its target. The temp copy never outlives a failure.
    """
    folder.mkdir(parents=True, exist_ok=True)
    origin, staged = source, None
    try:
        for candidate in candidate_names(name or source.name, reserve):
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
        os.link(origin, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # Filesystem without hard links (some SMB/FAT mounts): best effort check, then rename.
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        os.rename(origin, target)
        return
    os.unlink(origin)


def _stage_copy(source: Path, folder: Path) -> Path:
    """A copy of `source` under a temp name in `folder` (removed again if the copy fails, e.g.
    on a full disk). The name carries the pid, so a start-up sweep can tell a dead one's."""
    staged = folder / f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}.part"
    try:
        if source.is_symlink():
            os.symlink(os.readlink(source), staged)
            return staged
        with open(source, "rb") as src, open(staged, "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(source, staged)
    except BaseException:
        with contextlib.suppress(OSError):
            staged.unlink()
        raise
    return staged


def sweep_stale_temp_files(folders: Iterable[Path], now: float | None = None) -> int:
    """Remove the temp copies (`.ocrd-<pid>-*.part`, `.ocrd-*.error.tmp`) that a process left
    behind when it died mid-move: those of a pid that is not running here, untouched for
    STALE_TEMP_SECONDS, and any untouched for ORPHAN_TEMP_SECONDS. Returns how many."""
    now = time.time() if now is None else now
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob(f"{TEMP_PREFIX}*"):
            if not path.name.endswith((".part", ".tmp")):
                continue
            try:
                age = now - path.lstat().st_mtime
            except OSError:
                continue
            if age >= ORPHAN_TEMP_SECONDS or (age >= STALE_TEMP_SECONDS and _owner_dead(path)):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
    return removed


def _owner_dead(path: Path) -> bool:
    pid_text = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
    if not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def processed_folder(processed: Path, when: datetime | None = None) -> Path:
    when = when or datetime.now().astimezone()
    return processed / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}"


def relative_name(path: Path, inbox: Path | None) -> str:
    """The file's name as the user dropped it: its path below the inbox ('sub/scan.png')."""
    if inbox is not None:
        with contextlib.suppress(ValueError):
            return path.relative_to(inbox).as_posix()
    return path.name


def move_to_processed(
    source: Path, processed: Path, when: datetime | None = None, *, inbox: Path | None = None
) -> Path:
    """Move a done file to processed/YYYY/MM/DD/ without overwriting anything; a file from a
    sub-folder of `inbox` keeps that sub-folder below the dated folder."""
    folder = processed_folder(processed, when)
    relative = Path(relative_name(source, inbox))
    return move_no_clobber(source, folder / relative.parent, relative.name)


def move_to_failed(source: Path, failed: Path, reason: str) -> Path:
    """Move a failed file to failed/ and write the reason beside it as `<name>.error.txt`.

    The reason file is written first under a temp name and renamed into place after the move,
    so a crash never leaves a failed file without its reason for long (a retry re-creates it).
    The failed file's name is shortened where needed so that its reason file's name fits too.
    """
    target = move_no_clobber(source, failed, reserve=len(ERROR_SUFFIX))
    error_path = target.with_name(target.name + ERROR_SUFFIX)
    temp = error_path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}.error.tmp")
    try:
        temp.write_text(reason.rstrip() + "\n", encoding="utf-8", errors="backslashreplace")
        os.replace(temp, error_path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return target


def failed_files(failed: Path) -> list[Path]:
    """Failed files (not their reason files), oldest first."""
    if not failed.is_dir():
        return []
    files = [
        p
        for p in failed.iterdir()
        if (p.is_file() or p.is_symlink())
        and not p.name.endswith(ERROR_SUFFIX)
        and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: (p.lstat().st_mtime_ns, p.name))


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


def unreadable_files(
    inbox: Path, *, recursive: bool = True, ignore: Iterable[str] = (), limit: int = 1000
) -> list[dict[str, str]]:
    """Inbox files this user cannot open (no permission, locked), with why, for `ocrd status`:
    the daemon waits for them without a row in the store."""
    found = []
    if not inbox.is_dir():
        return found
    for path in scan_inbox(inbox, recursive=recursive, ignore=ignore):
        if classify(path, inbox)[0] != "file":
            continue
        problem = _open_problem(path)
        if problem is not None and not problem.startswith("not a regular file"):
            found.append({"path": printable(path), "reason": problem})
            if len(found) >= limit:
                break
    return found
