"""Writing outputs safely (a temporary sibling moved into place only on success) and file hashes.

On any failure, Ctrl-C or termination signal the temporary sibling is removed and whatever was at
the target before is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .errors import OutputError

logger = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError, also when it carries no strerror."""
    if exc.strerror:
        return exc.strerror
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path`; OutputError naming the file and the reason (disk full...) on failure."""
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise OutputError(path, f"cannot write ({describe_os_error(exc)})") from None


def _writable_parent(target: Path) -> Path:
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(target, f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(target, f"output folder {parent} is not writable")
    return parent


def check_output_file(target: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a file path that is a folder or whose folder is missing or read-only;
    return the folder."""
    target = Path(target)
    if target.is_dir():
        raise OutputError(target, "is a folder, expected a file path")
    return _writable_parent(target)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(
    output: str | os.PathLike[str], output_name: str, inputs: Mapping[str, str | os.PathLike[str] | None],
    folder: bool = False,
) -> None:
    """OutputError when output `output_name` is one of `inputs` (argument name -> path), also through
    symbolic or hard links; for a `folder` output (replaced as a whole) also when an input lies inside it."""
    target = Path(os.path.realpath(output))
    for name, path in inputs.items():
        if path is None:
            continue
        source = Path(os.path.realpath(path))
        inside = folder and source.is_relative_to(target)
        if source == target or inside or _same_file(target, source):
            what = "holds" if inside and source != target else "is"
            raise OutputError(output, f"{output_name} {what} the input {name} ({os.fspath(path)}): writing it would "
                                      f"destroy that input; give another {output_name}")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target` (same suffix); rename it over `target` on success."""
    target = Path(target)
    parent = check_output_file(target)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=parent)
    except OSError as exc:
        raise OutputError(target, f"cannot write in {parent} ({describe_os_error(exc)})") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    if libc is None or not hasattr(libc, "renameat2"):
        return False
    status = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return status == 0


def _replace_directory(staging: Path, target: Path) -> None:
    """Put `staging` where `target` is; the old `target` ends up at `staging` and is removed after."""
    if not target.exists():
        os.rename(staging, target)
        return
    if not _exchange(staging, target):  # two renames, undone if the second fails
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rmdir(aside)
        os.rename(target, aside)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(aside, target)
            raise
        os.rename(aside, staging)
    shutil.rmtree(staging, ignore_errors=True)


def check_replaceable_folder(target: Path, replaceable: Callable[[Path], bool]) -> None:
    """OutputError unless `target` is missing, or a folder whose every entry passes `replaceable`
    (what the command itself writes), naming the first foreign entry."""
    if target.exists() and not target.is_dir():
        raise OutputError(target, "exists and is not a folder")
    if target.is_dir():
        foreign = next((entry for entry in sorted(target.iterdir()) if not replaceable(entry)), None)
        if foreign is not None:
            raise OutputError(
                target, f"holds {foreign.name!r}, which this command did not write; give an empty or new folder"
            )


@contextlib.contextmanager
def atomic_directory(
    target: str | os.PathLike[str], replaceable: Callable[[Path], bool] = lambda _path: False
) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target` as a whole.

    An existing `target` is replaced only when every entry in it passes `replaceable` (files this
    package writes, such as numbered frames), so a folder of the user's own files is never
    removed: OutputError names the first foreign entry instead. On Linux the swap is one
    renameat2(RENAME_EXCHANGE); elsewhere two renames, undone if the second fails.
    """
    target = Path(target)
    check_replaceable_folder(target, replaceable)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(target, f"cannot create output folder ({describe_os_error(exc)})") from None
    parent = _writable_parent(target)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise OutputError(target, f"cannot write in {parent} ({describe_os_error(exc)})") from None
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        _replace_directory(staging, target)
    except OutputError as exc:  # name the file as the user knows it, not its temporary stand-in
        inside = Path(exc.path)
        if inside.is_relative_to(staging):
            raise OutputError(target / inside.relative_to(staging), exc.problem) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
