"""Where the export cache lives, the names of its entries, and listing or clearing them.

Location: $FRAME_GEN_CACHE_DIR, else $XDG_CACHE_HOME/frame_generation_pipeline, else
~/.cache/frame_generation_pipeline. Entries are keyed by checkpoint sha256, mode and opset:
`onnx/<sha>-<mode>-opset<N>[-<part>].onnx` (the full graph and those of the template cache),
`openvino/<sha>-<mode>-opset<N>[-<part>]/` (what OpenVINO compiled from them) and
`fidelity/<sha>-<mode>-opset<N>/` (the checks of faster precisions on template sets, render/fidelity.py) and
`rest/<sha>-<mode>-opset<N>/` (the live avatar's rest frames per template set, models/rest_cache.py).
A part is one or more names of the registries joined by "-" (a graph of PARTS, a precision, a
backend: `-first`, `-int8`, `-rest-fp16`), so that an entry a new precision makes is listed and
cleared with the others.
Each entry is made by one process at a time (models/cache_lock.py); what an interrupted write
leaves (a temporary, a lock file of no live holder, a folder half written) is listed and removed
here as a leftover.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..contract import ModeSpec
from ..errors import ConfigurationError, OutputError
from ..files import describe_os_error, file_sha256
from ..precisions import PRECISIONS
from .backends import BACKENDS
from .cache_lock import LOCK_SUFFIX, WRITING_MARK, is_held, lock_path, unheld

CACHE_ENV = "FRAME_GEN_CACHE_DIR"
#: Opset of the graphs the backends export for themselves.
CACHE_OPSET = 17
#: The kinds of entries, one folder each.
KINDS = ("onnx", "openvino", "fidelity", "rest")
#: The graphs of one export: the whole network; the same also giving the template half's skips (a
#: template's first visit); the rest of the network from those (docs/contract.md, "The network").
PARTS = ("full", "first", "rest")
#: Graphs earlier versions exported (the template half, before "first"): recognised, to be listed and cleared.
FORMER_PARTS = ("template",)
_SHA_CHARS = 24


def _entry_name() -> re.Pattern[str]:
    """What an entry's name is: sha, mode and opset, then maybe a part made of the registries' names
    (read now: a precision registered later is recognised too)."""
    names = "|".join(sorted((re.escape(name) for name in {*PARTS, *FORMER_PARTS, *PRECISIONS, *BACKENDS}), key=len, reverse=True))
    part = rf"(?:{names})(?:-(?:{names}))*"
    return re.compile(rf"(?P<sha>[0-9a-f]{{{_SHA_CHARS}}})-(?P<mode>[a-z]+)-opset(?P<opset>\d+)(?:-(?P<part>{part}))?")


def cache_root() -> Path:
    """The folder that holds every kind of cache entry (not created)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "frame_generation_pipeline"


def cache_dir(kind: str) -> Path:
    """The cache folder for `kind` ("onnx", "openvino"), created on demand."""
    folder = cache_root() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(folder, f"cannot create the cache folder ({describe_os_error(exc)}); set {CACHE_ENV}") from None
    return folder


def entry_name(sha256: str, mode: ModeSpec, part: str = "full", opset: int = CACHE_OPSET) -> str:
    """The name (without suffix) of one cached graph of checkpoint `sha256`."""
    suffix = "" if part == "full" else f"-{part}"
    return f"{sha256[:_SHA_CHARS]}-{mode.name}-opset{opset}{suffix}"


def export_path(sha256: str, mode: ModeSpec, part: str = "full") -> Path:
    """Where the cached ONNX graph `part` of checkpoint `sha256` lives (the folder is created)."""
    return cache_dir("onnx") / f"{entry_name(sha256, mode, part)}.onnx"


def compiled_dir(model_path: Path) -> Path:
    """OpenVINO's compile cache for one graph: beside its cache entry when it is one, else shared."""
    match = _entry_name().fullmatch(model_path.stem)
    return cache_dir("openvino") / (match.group(0) if match else "other")


@dataclass(frozen=True)
class CacheEntry:
    """One entry of the export cache: a graph, or what OpenVINO compiled from one."""

    path: Path
    kind: str
    checkpoint_sha256: str
    mode: str
    opset: int
    part: str
    nbytes: int


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def cache_entries() -> list[CacheEntry]:
    """Every recognised entry of the cache, by kind and name (files the cache did not write are left out)."""
    entries = []
    for kind in KINDS:
        folder = cache_root() / kind
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            match = _entry_name().fullmatch(path.stem if kind == "onnx" else path.name)
            if match is None or (kind == "onnx") != (path.suffix == ".onnx"):
                continue
            entries.append(CacheEntry(path, kind, match["sha"], match["mode"], int(match["opset"]),
                                      match["part"] or "full", _size(path)))
    return entries


def _sha_prefix(which: str | os.PathLike[str] | None) -> str:
    """The sha256 prefix `which` names (a checkpoint's path, or a prefix of its sha256); "" for None."""
    if which is None:
        return ""
    text = os.fspath(which)
    if Path(text).is_file():
        return file_sha256(text)[:_SHA_CHARS]
    if re.fullmatch(r"[0-9a-fA-F]{6,64}", text):
        return text.lower()[:_SHA_CHARS]
    raise ConfigurationError(f"{text}: neither a checkpoint file nor a sha256 prefix (6 or more hex digits)")


def select_entries(which: str | os.PathLike[str] | None) -> list[CacheEntry]:
    """The entries of one checkpoint (`which`: its path, or a prefix of its sha256), or all for None."""
    sha = _sha_prefix(which)
    return [entry for entry in cache_entries() if entry.checkpoint_sha256.startswith(sha)]


def clear_cache(which: str | os.PathLike[str] | None = None) -> list[CacheEntry]:
    """Remove the entries of one checkpoint (its path or a sha256 prefix), or all for None, but those a
    running process is writing or reading in place (OpenVINO's); those removed."""
    removed = []
    for entry in select_entries(which):
        with unheld(entry.path) as free:
            if free:
                _remove(entry.path)
                removed.append(entry)
    return removed


def _remove(path: Path) -> None:
    try:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(path, f"cannot remove from the cache ({describe_os_error(exc)})") from None


#: A temporary of files.atomic_file: `.NAME.<8 random characters>.partial[.SUFFIX]` for entry NAME[.SUFFIX].
_PARTIAL = re.compile(r"\.(?P<stem>.+)\.[a-z0-9_]{8}\.partial(?P<suffix>\.[^.]+)?")


@dataclass(frozen=True)
class Leftover:
    """What an interrupted write left in the cache: `what` ("temporary", "lock file", "half-written
    folder") at `path`, of the entry `entry`, whose writer is gone."""

    path: Path
    what: str
    entry: Path
    nbytes: int

    @property
    def checkpoint_sha256(self) -> str:
        """The (shortened) sha256 of the checkpoint whose entry it was (named by the entry or, for a
        fidelity record, its folder), or "" where the names do not say."""
        match = _entry_name().match(self.entry.name) or _entry_name().fullmatch(self.entry.parent.name)
        return match["sha"] if match else ""


def _interrupted(path: Path) -> tuple[str, Path] | None:
    """What `path` is when an interrupted write may have left it, and the entry it belongs to; else None."""
    if path.is_dir():
        return ("half-written folder", path) if (path / WRITING_MARK).exists() else None
    partial = _PARTIAL.fullmatch(path.name)
    if partial is not None:
        return "temporary", path.with_name(partial["stem"] + (partial["suffix"] or ""))
    if path.name.startswith(".") and path.name.endswith(LOCK_SUFFIX):
        return "lock file", path.with_name(path.name[1:-len(LOCK_SUFFIX)])
    return None


def _leftover(path: Path) -> Leftover | None:
    """`path` as a leftover of an interrupted write; None where it is not one (or its writer is alive)."""
    found = _interrupted(path)
    if found is None or is_held(lock_path(found[1])):
        return None
    try:
        return Leftover(path, found[0], found[1], _size(path))
    except FileNotFoundError:  # removed meanwhile
        return None


def cache_leftovers(which: str | os.PathLike[str] | None = None) -> list[Leftover]:
    """What interrupted writes left in the cache (of one checkpoint, as for `select_entries`), writes
    under way left out."""
    sha = _sha_prefix(which)
    found = []
    for kind in KINDS:
        folder = cache_root() / kind
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            leftover = _leftover(path)
            if leftover is not None and leftover.checkpoint_sha256.startswith(sha):
                found.append(leftover)
    return found


def clear_leftovers(which: str | os.PathLike[str] | None = None) -> list[Leftover]:
    """Remove what interrupted writes left (of one checkpoint, or all); those removed."""
    removed = []
    for leftover in cache_leftovers(which):
        with unheld(leftover.entry) as free:
            if free:
                _remove(leftover.path)
                removed.append(leftover)
    return removed
