"""The cache of exported graphs (and what backends compile from them), keyed by checkpoint sha256.

Location: $FRAME_GEN_CACHE_DIR, else $XDG_CACHE_HOME/frame_generation_pipeline, else
~/.cache/frame_generation_pipeline. An export found there is used without loading torch weights.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from ..checks import missing_file
from ..contract import ModeSpec
from ..errors import BackendUnavailableError, ModelFileError, OutputError
from ..files import describe_os_error

logger = logging.getLogger(__name__)

CACHE_ENV = "FRAME_GEN_CACHE_DIR"
#: Opset of the graphs the backends export for themselves.
CACHE_OPSET = 17


def cache_dir(kind: str) -> Path:
    """The cache folder for `kind` ("onnx", "openvino"...), created on demand."""
    if os.environ.get(CACHE_ENV):
        base = Path(os.environ[CACHE_ENV])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "frame_generation_pipeline"
    folder = base / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(folder, f"cannot create the cache folder ({describe_os_error(exc)}); set {CACHE_ENV}") from None
    return folder


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


def check_model_file(
    path: Path, metadata: Mapping[str, str], mode: ModeSpec, checkpoint: str | os.PathLike[str], sha256: str
) -> None:
    """Refuse an exported model unless it records `checkpoint`'s sha256 and `mode` (naming both)."""
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
    if metadata.get("mode", mode.name) != mode.name:
        raise ModelFileError(path, f"was exported for mode {metadata['mode']!r}, not {mode.name!r}")


def cached_unet_export(checkpoint: str | os.PathLike[str], mode: ModeSpec, sha256: str) -> Path:
    """The ONNX export of `checkpoint` from the cache, exported (loading torch weights) on first use."""
    path = cache_dir("onnx") / f"{sha256[:24]}-{mode.name}-opset{CACHE_OPSET}.onnx"
    if path.is_file():
        logger.info("using the cached export %s", path)
        return path
    from .backends.torch_backend import TorchBackend

    model = TorchBackend(checkpoint, mode, device="cpu")  # a bad checkpoint is refused before any export
    logger.info("exporting %s to ONNX once, into the cache (%s)", os.fspath(checkpoint), path.parent)
    model.export_to_onnx(path, CACHE_OPSET)
    return path


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
