"""ONNX files and their metadata: importing onnx, reading a file's metadata (without onnx), and its provenance check."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import BinaryIO

from ..checks import missing_file
from ..contract import ModeSpec
from ..errors import BackendUnavailableError, ModelFileError

#: Names of the template half's outputs (the network's skips x2..x6) in the exported graphs.
SKIP_NAMES = ("skip2", "skip3", "skip4", "skip5", "skip6")


def onnx_module() -> ModuleType:
    """The `onnx` package (with onnxruntime, which checks exports), or BackendUnavailableError saying how to install."""
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(
            f"ONNX files need onnx and onnxruntime ({exc.name} is missing): pip install onnx onnxruntime"
        ) from None
    return onnx


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata properties of an ONNX model file; ModelFileError if it is not a readable ONNX file.

    Read from the file's top-level protobuf fields, seeking past the graph: neither the graph's bytes
    nor the onnx package are loaded (importing onnx alone took 0.7 s of a 1 s start).
    """
    try:
        with open(path, "rb") as handle:
            graphs, metadata = 0, {}
            for number, value in _fields(handle, os.fstat(handle.fileno()).st_size, skip=_GRAPH):
                graphs += number == _GRAPH
                if number == _METADATA:
                    entry = dict(_fields(io.BytesIO(value), len(value)))
                    metadata[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
    except (FileNotFoundError, IsADirectoryError):
        raise ModelFileError(path, missing_file(path, "model file")) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(path, f"not a readable ONNX model ({exc})") from None
    if graphs != 1:
        raise ModelFileError(path, "not a readable ONNX model (no graph)")
    return metadata


#: ModelProto's field numbers of the graph and of a metadata entry (onnx.proto).
_GRAPH, _METADATA = 7, 14
#: Protobuf wire types: a varint, 8 bytes, a length-delimited value, 4 bytes.
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(handle: BinaryIO) -> int:
    value = shift = 0
    while True:
        byte = handle.read(1)
        if not byte or shift > 63:
            raise ValueError("a number runs past the end")
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if byte[0] < 0x80:
            return value


def _fields(handle: BinaryIO, size: int, skip: int = 0) -> Iterator[tuple[int, bytes]]:
    """(field number, bytes) of the protobuf message in `handle` up to `size` (b"" for numbers, and for
    field `skip`, whose bytes are seeked past); ValueError where the bytes are not such a message."""
    while handle.tell() < size:
        key = _varint(handle)
        number, wire = key >> 3, key & 7
        if number == 0 or wire not in (_VARINT, _FIXED64, _BYTES, _FIXED32):
            raise ValueError(f"field {number} has wire type {wire}")
        if wire == _VARINT:
            _varint(handle)
            yield number, b""
            continue
        length = {_FIXED64: 8, _FIXED32: 4}.get(wire) or _varint(handle)
        if handle.tell() + length > size:
            raise ValueError(f"field {number} runs past the end")
        if number == skip:
            handle.seek(length, os.SEEK_CUR)
            yield number, b""
        else:
            yield number, handle.read(length)


def check_model_file(
    path: str | os.PathLike[str], metadata: Mapping[str, str], mode: ModeSpec, checkpoint: str | os.PathLike[str],
    sha256: str,
) -> None:
    """Refuse an exported model unless it records `mode` and `checkpoint`'s sha256 (naming both)."""
    check_mode(path, metadata, mode)
    stored = metadata.get("checkpoint_sha256", "")
    if not stored:
        raise ModelFileError(
            path, f"records no checkpoint sha256, so it cannot be matched to {os.fspath(checkpoint)}: "
            "export it with `frame-gen export-onnx`"
        )
    if stored != sha256:
        raise ModelFileError(
            path, f"was exported from a checkpoint with sha256 {stored[:16]}..., but {os.fspath(checkpoint)} has "
            f"sha256 {sha256[:16]}...: give the checkpoint it came from, or export this one again"
        )


def check_mode(path: str | os.PathLike[str], metadata: Mapping[str, str], mode: ModeSpec) -> None:
    """Refuse an exported model whose metadata names another mode than `mode`."""
    if metadata.get("mode", mode.name) != mode.name:
        raise ModelFileError(path, f"was exported for mode {metadata['mode']!r}, not {mode.name!r}")
