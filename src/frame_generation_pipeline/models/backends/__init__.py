"""The inference backends and the choice among them: one file per backend, one registry line each.

`auto` takes the installed backend with the highest measured rank for the device (README,
"Backends"); every backend it may pick keeps frames within 2 per value of the exact path.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable

from ...contract import ModeSpec, get_mode
from ...devices import device_type, resolve_device
from ...errors import BackendUnavailableError, ConfigurationError, install_hint
from .base import InferenceBackend

logger = logging.getLogger(__name__)

#: name -> "module:Class" in this folder; imported on use, so that no backend's library loads early.
_REGISTRY = {
    "torch": "torch_backend:TorchBackend",
    "onnxruntime": "onnxruntime_backend:OnnxRuntimeBackend",
    "openvino": "openvino_backend:OpenVinoBackend",
}
BACKENDS = tuple(_REGISTRY)
BACKEND_CHOICES = (*BACKENDS, "auto")
#: The backend whose frames are the contract's, bit for bit, on the CPU.
EXACT_BACKEND = "torch"


def backend_class(name: str) -> type[InferenceBackend]:
    """The class of backend `name`; ConfigurationError naming the choices for an unknown one."""
    if name not in _REGISTRY:
        raise ConfigurationError(f"unknown backend {name!r}: expected one of {', '.join(BACKEND_CHOICES)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def choose_backend(name: str, device: str) -> str:
    """The concrete backend for `name` on a resolved `device` ("auto": the fastest installed)."""
    if name != "auto":
        cls = backend_class(name)
        if not cls.installed():
            raise BackendUnavailableError(f"the {name} backend needs {', '.join(cls.requires)}: {install_hint(cls.extra)}")
        if cls.rank(device_type(device)) is None:
            raise BackendUnavailableError(f"the {name} backend cannot run on {device}")
        return name
    ranked = []
    for candidate in BACKENDS:
        cls = backend_class(candidate)
        rank = cls.rank(device_type(device)) if cls.installed() else None
        if rank is not None:
            ranked.append((rank, candidate))
    return max(ranked)[1]


def load_backend(
    checkpoint: str | os.PathLike[str],
    mode: str | ModeSpec = "ave",
    device: str | None = None,
    backend: str = "auto",
    precision: str = "auto",
    model_file: str | os.PathLike[str] | None = None,
) -> InferenceBackend:
    """Load a checkpoint into backend `backend` ("auto" for the fastest) on `device` (None: CUDA if present).

    `model_file` is an exported graph for the onnxruntime or OpenVINO backends; it must record
    `checkpoint`'s sha256, and with it no torch weights are loaded. Without it they export the
    checkpoint into the cache on first use.
    """
    spec = get_mode(mode)
    resolved = resolve_device(device)
    name = choose_backend(backend, resolved)
    if model_file is not None and name == EXACT_BACKEND:
        raise ConfigurationError(
            f"an exported model file ({os.fspath(model_file)}) is for the onnxruntime or openvino backend, "
            f"not {name}: drop it or choose one of those"
        )
    extra = {} if model_file is None else {"model_file": model_file}
    construct: Callable[..., InferenceBackend] = backend_class(name)  # each backend's own constructor
    loaded = construct(checkpoint, spec, resolved, precision=precision, **extra)
    logger.info("backend %s", loaded.describe())
    return loaded


__all__ = ["BACKENDS", "BACKEND_CHOICES", "EXACT_BACKEND", "InferenceBackend", "backend_class", "choose_backend", "load_backend"]
