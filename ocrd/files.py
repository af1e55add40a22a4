"""Opening inbox files without being trapped by what is not a regular file.

`open()` on a FIFO blocks until a writer appears, and a link to /dev/zero reads forever.
`open_regular` opens with O_NONBLOCK (a FIFO opens at once) and refuses, by `fstat` on the
open descriptor (so a swap after the check cannot fool it), anything that is not a regular
file. `kind_of` names a file type for the one-line reason.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device, directory or (when not followed) a symbolic link."""


_KINDS = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symbolic link"),
)


def kind_of(mode: int) -> str:
    """'regular file', 'named pipe (FIFO)', 'socket', ... for an `st_mode`."""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(mode)), "special file")


def open_regular(path: Path | str, *, follow_symlinks: bool = True) -> BinaryIO:
    """Open a regular file for reading in binary mode, never blocking; NotRegularFileError
    (an OSError) for anything else."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            reason = "symbolic link (not followed)"
            raise NotRegularFileError(exc.errno, reason, str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(0, f"not a regular file ({kind_of(mode)})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
