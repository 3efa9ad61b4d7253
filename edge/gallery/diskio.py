"""Durable file operations: whole writes, fsync, the writer lock, "disk full".

Nothing here knows what a gallery is; edge.gallery.store decides the order
of writes that makes a change crash-safe.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from pathlib import Path

from edge.gallery.errors import GalleryLockedError

SQLITE_FULL = 13


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at byte ``offset`` (pwrite may write less than asked)."""
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        if written == 0:
            raise OSError(errno.EIO, "pwrite wrote nothing")
        view = view[written:]
        offset += written


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) holding ``data``, flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_at(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make a directory's entries (files created, renamed, removed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OSError or a sqlite3 error means 'no space left' (or over quota)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL


def restrict_modes(directory: Path) -> None:
    """Owner-only access: ``directory`` 0700 and its files 0600, where this process may change them."""
    targets = [(directory, 0o700)] + [(child, 0o600) for child in directory.iterdir() if child.is_file()]
    for target, mode in targets:
        try:
            if stat.S_IMODE(os.stat(target).st_mode) != mode:
                os.chmod(target, mode)
        except OSError:  # another owner's file, or gone meanwhile: leave it
            pass


def remove_tree(path: Path) -> None:
    """Remove a flat directory and its files (a half-made gallery)."""
    if path.is_dir():
        for child in path.iterdir():
            child.unlink(missing_ok=True)
        path.rmdir()


def acquire_lock(path: Path, timeout: float) -> int:
    """An exclusive flock on ``path`` (created if missing), waiting up to ``timeout`` seconds.

    Returns the descriptor; closing it releases the lock, and so does the
    process dying, however it dies. The holder's pid is written into the
    file, for the message another process gets (GalleryLockedError).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise GalleryLockedError(f"{path.parent}: locked for writing (by pid {holder})") from None
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
