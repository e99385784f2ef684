"""One writer per cache entry across processes: a lock file beside the entry, held with flock.

The kernel drops a flock when its holder dies, so a killed process never blocks the next. The
holder removes the lock file before letting go; a process that locked a file removed meanwhile (or
replaced) lets go and opens the new one, so that two processes never both hold an entry. A lock
file left by a killed holder is taken over by the next process, or listed and removed by
`frame-gen cache` (models/cache.py). A folder written in place by a library (OpenVINO's compile
cache) is marked while it is written: one whose writer died is emptied before anyone reads it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import OutputError
from ..files import describe_os_error

logger = logging.getLogger(__name__)

#: The lock file of entry NAME is `.NAME.lock` in the entry's folder.
LOCK_SUFFIX = ".lock"
#: The file inside a folder written in place while a writer is at it (see `writing`).
WRITING_MARK = ".writing"


def lock_path(entry: Path) -> Path:
    """The lock file of cache entry `entry` (a file or a folder)."""
    return entry.parent / f".{entry.name}{LOCK_SUFFIX}"


def _open_locked(path: Path, wait: bool) -> int | None:
    """A descriptor of `path` holding its flock (the file and its folder created where missing); None
    where another process holds it and `wait` is False."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise OutputError(path, f"cannot create the cache's lock file ({describe_os_error(exc)})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(handle)
            return None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_ino, current.st_dev) == os.fstat(handle)[1:3]:
            return handle
        os.close(handle)  # the holder before us removed (or replaced) it: lock the file there now


def _release(path: Path, handle: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(handle)


@contextlib.contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """Hold the lock of cache entry `entry` for the block: wait while another process holds it."""
    path = lock_path(entry)
    handle = _open_locked(path, wait=False)
    if handle is None:
        logger.info("waiting for another process making %s", entry)
        handle = _open_locked(path, wait=True)
    assert handle is not None
    try:
        yield
    finally:
        _release(path, handle)


@contextlib.contextmanager
def unheld(entry: Path) -> Iterator[bool]:
    """Hold the lock of `entry` for the block where no other process holds it (True), else hold
    nothing (False): for removing what a dead process left without disturbing a live one."""
    path = lock_path(entry)
    handle = _open_locked(path, wait=False)
    try:
        yield handle is not None
    finally:
        if handle is not None:
            _release(path, handle)


def is_held(path: Path) -> bool:
    """True while a live process holds lock file `path`."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(handle)
    return False


@contextlib.contextmanager
def entry_locks(entries: Sequence[Path]) -> Iterator[None]:
    """Hold the locks of several entries, taken in the order given (give them in one order everywhere)."""
    with contextlib.ExitStack() as held:
        for entry in entries:
            held.enter_context(entry_lock(entry))
        yield


@contextlib.contextmanager
def writing(folder: Path) -> Iterator[Path]:
    """Hold `folder`'s lock while a library reads and writes it in place; a folder whose last writer
    died mid-write (its mark left) is emptied first. The folder, created where missing."""
    with entry_lock(folder):
        mark = folder / WRITING_MARK
        if mark.exists():
            logger.warning("%s was left half-written by a process that stopped: making it again", folder)
            shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            mark.touch()
        except OSError as exc:
            raise OutputError(folder, f"cannot write the cache entry ({describe_os_error(exc)})") from None
        yield folder
        mark.unlink(missing_ok=True)  # left in place when the block fails: its contents are not trusted
