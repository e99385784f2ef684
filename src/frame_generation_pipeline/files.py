"""Writing outputs safely: the one check every output goes through (check_output), a temporary
sibling moved into place only on success, and file hashes.

On any failure, Ctrl-C or termination signal the temporary sibling is removed and whatever was at
the target before is left exactly as it was. A folder output is replaced only when it is empty or
holds the manifest our writer leaves, listing everything in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import OutputError
from .version import __version__

logger = logging.getLogger(__name__)

#: The file a folder output of ours holds: what wrote it and the files it wrote (see check_replaceable_folder).
MANIFEST = ".frame-gen-output.json"
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


def check_output_file(target: str | os.PathLike[str], name: str = "the output") -> Path:
    """Refuse, before any work, a file path (argument `name`) that is a folder or whose folder is
    missing or read-only; return the folder."""
    target = Path(target)
    if target.is_dir():
        raise OutputError(target, f"{name} is a folder, expected a file path")
    return _writable_parent(target)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


Paths = Mapping[str, str | os.PathLike[str] | None]


def _overlap(target: Path, path: str | os.PathLike[str]) -> str | None:
    """How output `target` meets another path: "is" it (also through links), "is inside" it, "holds" it, or None."""
    real, other = Path(os.path.realpath(target)), Path(os.path.realpath(path))
    if real == other or _same_file(target, Path(path)):
        return "is"
    if real.is_relative_to(other) and other.is_dir():
        return "is inside"
    return "holds" if other.is_relative_to(real) else None


#: Outputs whose kind the argument's name tells (a report is JSON), by argument name -> accepted suffixes.
_SUFFIXES = {"--report": (".json", ".jsonl")}


def check_output(
    output: str | os.PathLike[str], name: str, inputs: Paths, folder: bool = False, outputs: Paths | None = None,
) -> Path:
    """The check every output of every command goes through, before any model loads.

    OutputError when `output` (given as argument `name`) is one of `inputs` (argument name -> path),
    lies inside an input folder, or is a folder holding an input, also through symbolic and hard links;
    the same against the command's other `outputs`. Then a file output must have a writable folder,
    and a `folder` output must be replaceable (see check_replaceable_folder). Returns the output's Path.
    """
    target = Path(output)
    for kind, paths in (("input", inputs), ("output", outputs or {})):
        for label, path in paths.items():
            relation = _overlap(target, path) if path is not None else None
            if path is not None and relation is not None:
                fix = "a path of its own" if relation == "is" else f"a path outside every {kind}"
                raise OutputError(output, f"{name} {relation} the {kind} {label} ({os.fspath(path)}): writing it "
                                          f"would change or destroy that {kind}; give {name} {fix}")
    if folder:
        check_replaceable_folder(target, name)
    else:
        check_output_file(target, name)
        suffixes = _SUFFIXES.get(name)
        if suffixes and target.suffix.lower() not in suffixes:
            raise OutputError(output, f"{name} is written as JSON: give it a name ending in {' or '.join(suffixes)}")
    return target


def _written_files(folder: Path) -> dict[str, int]:
    """The files (relative path -> size) the manifest of a folder we wrote lists; {} without one."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
        files = data["files"] if data.get("writer", "").startswith("frame-gen") else {}
        return {str(key): int(value) for key, value in files.items()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def _entries(folder: Path) -> Iterator[tuple[str, Path]]:
    """Every entry under `folder` (relative posix name, path), links not followed, the manifest left out."""
    for root, folders, files in os.walk(folder):
        for entry in sorted(folders) + sorted(files):
            path = Path(root, entry)
            relative = path.relative_to(folder).as_posix()
            if relative != MANIFEST:
                yield relative, path


def check_replaceable_folder(target: Path, name: str = "the output folder") -> None:
    """OutputError unless `target` (argument `name`) is missing, empty, or provably an earlier output
    of ours: a folder whose manifest lists every file in it (with its size), naming the first entry
    that is not so."""
    if target.exists() and not target.is_dir():
        raise OutputError(target, f"{name} exists and is not a folder: give a new or empty folder")
    if not target.is_dir():
        return
    written = _written_files(target)
    for relative, path in _entries(target):
        if path.is_dir() and not path.is_symlink():
            ours = any(name.startswith(f"{relative}/") for name in written)
        else:
            ours = path.is_file() and not path.is_symlink() and written.get(relative) == path.stat().st_size
        if not ours:
            raise OutputError(target, f"{name} holds {relative!r}, which this command did not write (a folder is replaced only "
                                      f"when empty or written by frame-gen, as its {MANIFEST} shows): give an empty or "
                                      "new folder")


def _write_manifest(staging: Path, writer: str) -> None:
    files = {relative: path.stat().st_size for relative, path in _entries(staging) if path.is_file()}
    write_bytes(staging / MANIFEST, json.dumps({"writer": f"frame-gen {__version__} {writer}", "files": files},
                                               indent=1).encode() + b"\n")


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment in which another
    thread's new file gets the wrong mode): Linux's /proc/self/status, else the mode a probe file gets."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with tempfile.TemporaryDirectory() as folder:
        probe = os.path.join(folder, "probe")
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o777))
        return 0o777 & ~os.stat(probe).st_mode


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


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], writer: str) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target` as a whole.

    An existing `target` is replaced only when it is empty or an earlier output of ours (see
    check_replaceable_folder), so a folder of the user's own files is never removed. The new
    folder gets a manifest (MANIFEST: `writer`, what wrote it, and every file it holds) that
    makes it replaceable by a later run. On Linux the swap is one renameat2(RENAME_EXCHANGE);
    elsewhere two renames, undone if the second fails.
    """
    target = Path(target)
    check_replaceable_folder(target)
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
        _write_manifest(staging, writer)
        os.chmod(staging, 0o777 & ~_umask())
        _replace_directory(staging, target)
    except OutputError as exc:  # name the file as the user knows it, not its temporary stand-in
        inside = Path(exc.path)
        if inside.is_relative_to(staging):
            raise OutputError(target / inside.relative_to(staging), exc.problem) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
