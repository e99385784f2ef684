"""The inference backends and the choice among them: one file per backend, one registry line each.

The ladder (`ladder`) orders what the installed backends declare they run on the device by their
declared speeds (docs/performance.md): with precision `auto` on a CPU with native bf16 (AVX512_BF16
or AMX) its top is OpenVINO in bf16, whose frames the pipeline checks against the exact path on the
user's own templates before taking it (render/ladder.py), then onnxruntime fp32, where it ends (the
baseline, within 2 per value of the exact path); elsewhere it holds that baseline step alone.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable

from ...contract import ModeSpec, get_mode
from ...devices import device_type, resolve_device
from ...errors import BackendUnavailableError, ConfigurationError, install_hint
from ...precisions import BASELINE
from .base import InferenceBackend, Step, steps

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


def choose_backend(name: str, device: str, precision: str = "auto") -> str:
    """The concrete backend for `name` on a resolved `device` ("auto": the top of the ladder for `precision`)."""
    return ladder(name, device, precision)[0].backend


def ladder(name: str, device: str, precision: str = "auto") -> list[Step]:
    """The steps (backend, precision) `precision` takes on a resolved `device` with backend `name`,
    fastest first (base.steps): for "auto" each checked step down to the baseline, for a named
    precision one step. A named backend is refused here where it is not installed or cannot run on
    `device`, and left to refuse a named precision it does not run when it loads."""
    if name != "auto":
        cls = backend_class(name)
        if not cls.installed():
            raise BackendUnavailableError(f"the {name} backend needs {', '.join(cls.requires)}: {install_hint(cls.extra)}")
        if not cls.runs_on(device_type(device)):
            raise BackendUnavailableError(f"the {name} backend cannot run on {device}")
        found = steps([cls], device_type(device), precision)[:None if precision == "auto" else 1]
        return found or [Step(name, BASELINE if precision == "auto" else precision, None)]  # refused as it loads
    installed = [backend_class(candidate) for candidate in BACKENDS if backend_class(candidate).installed()]
    found = steps(installed, device_type(device), precision)
    if not found:
        raise BackendUnavailableError(f"no installed backend runs precision {precision!r} on {device}")
    return found if precision == "auto" else found[:1]


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
    name = choose_backend(backend, resolved, precision)
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


__all__ = ["BACKENDS", "BACKEND_CHOICES", "EXACT_BACKEND", "InferenceBackend", "Step", "backend_class", "choose_backend", "ladder",
           "load_backend"]
