"""ONNX files and their metadata: importing onnx, reading a file's metadata, and its provenance check."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType

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
    """The metadata properties of an exported model; ModelFileError if it is not a readable ONNX file."""
    onnx = onnx_module()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (FileNotFoundError, IsADirectoryError):
        raise ModelFileError(path, missing_file(path, "model file")) from None
    except Exception as exc:  # protobuf raises its own types for foreign bytes
        raise ModelFileError(path, f"not a readable ONNX model ({type(exc).__name__})") from None
    return {entry.key: entry.value for entry in model.metadata_props}


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
