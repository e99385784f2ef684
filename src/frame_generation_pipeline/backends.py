"""Choosing and building the inference backend behind FrameGenerator: torch or onnxruntime.

"auto" takes what measured fastest for the device (README, "Backends"): onnxruntime on the CPU
(about 6x torch eager on a 2-core AVX2 CPU), torch on CUDA (not yet measured against onnxruntime-gpu).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import torch

from .errors import ConfigurationError
from .frame_generator import InferenceModel
from .unet_model import UNetModel

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "auto")
#: Frames per network call when none is given, by (backend, device type); measured, see README.
DEFAULT_BATCH = {("torch", "cpu"): 1, ("onnxruntime", "cpu"): 2, ("torch", "cuda"): 8, ("onnxruntime", "cuda"): 8}
CACHE_ENV = "FRAME_GEN_CACHE_DIR"


def resolve_backend(name: str, device: torch.device) -> str:
    """The concrete backend for `name` on `device`; ConfigurationError for an unknown name."""
    if name not in BACKENDS:
        raise ConfigurationError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    if device.type == "cpu" and importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime"
    return "torch"


def cache_dir() -> Path:
    """Where exported graphs are kept: $FRAME_GEN_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "frame_generation_pipeline"


def cached_export(model: UNetModel, opset_version: int = 17) -> Path:
    """The ONNX export of `model`'s checkpoint from the cache, exporting it on first use."""
    from .onnx_model import read_metadata

    folder = cache_dir() / "onnx"
    path = folder / f"{model.checkpoint_sha256[:24]}-{model.mode.name}-opset{opset_version}.onnx"
    if path.is_file() and read_metadata(path).get("checkpoint_sha256") == model.checkpoint_sha256:
        logger.info("using cached export %s", path)
        return path
    folder.mkdir(parents=True, exist_ok=True)
    model.export_to_onnx(path, opset_version)
    return path


def create_backend(
    name: str, model: UNetModel, onnx_path: str | os.PathLike[str] | None = None
) -> tuple[str, InferenceModel]:
    """(concrete backend name, model to run) for backend `name`; `onnx_path` skips the cache."""
    concrete = resolve_backend(name, model.device)
    if concrete == "torch":
        return concrete, model
    from .onnx_model import OnnxUNetModel

    path = Path(onnx_path) if onnx_path is not None else cached_export(model)
    return concrete, OnnxUNetModel(path, model.mode.name, device=model.device)
