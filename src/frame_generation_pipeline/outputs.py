"""Writing outputs safely: work in a temporary sibling, move into place only on success.

On any failure (or Ctrl-C) the temporary sibling is removed and whatever was at the target before
is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError


def _writable_parent(target: Path) -> Path:
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(target, f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(target, f"output folder {parent} is not writable")
    return parent


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target` (same suffix); rename it over `target` on success."""
    target = Path(target)
    if target.is_dir():
        raise OutputError(target, "is a folder, expected a file path")
    parent = _writable_parent(target)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=parent)
    except OSError as exc:
        raise OutputError(target, f"cannot write in {parent} ({exc.strerror})") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success its files move into `target`.

    A new `target` is created by renaming; files of an existing `target` with the same names are
    replaced, other files in it are left alone.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputError(target, "exists and is not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(target, f"cannot create output folder ({exc.strerror})") from None
    parent = _writable_parent(target)
    try:
        temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise OutputError(target, f"cannot write in {parent} ({exc.strerror})") from None
    try:
        yield temporary
        if target.exists():
            for item in sorted(temporary.iterdir()):
                os.replace(item, target / item.name)
        else:
            os.replace(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
