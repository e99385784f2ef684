"""The onnxruntime backend: the exported graph on the CPU (or CUDA with onnxruntime-gpu).

Frames are within 2 per value of the exact path. On a CPU with two or more cores one session
serves two network calls at once, its threads adding up to one per core (README, "Throughput").
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...checks import missing_file
from ...contract import ModeSpec, get_mode
from ...devices import device_type, usable_cpus
from ...errors import BackendUnavailableError, ConfigurationError, ModelFileError, first_line
from ..cache import cached_unet_export, check_model_file
from .base import InferenceBackend, checkpoint_digest

logger = logging.getLogger(__name__)


def _providers(device: str) -> list[str]:
    import onnxruntime

    if device_type(device) == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise BackendUnavailableError("onnxruntime here has no CUDA execution provider (install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeBackend(InferenceBackend):
    """An exported U-Net run with onnxruntime.

    Args:
        onnx_path: a graph written by `frame-gen export-onnx` (or the backend's own cache).
        mode: the audio mode; must match the graph's metadata.
        device: "cpu" or "cuda".
        streams: network calls that may run at once (from as many threads) in the one session.
            None: 2 on a CPU with 2 or more cores, 1 on CUDA. Frames do not depend on it.
        checkpoint_sha256: the checkpoint the graph must come from; "" skips the check.
    """

    name = "onnxruntime"
    requires = ("onnxruntime",)
    extra = ""

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        mode: str | ModeSpec,
        device: str = "cpu",
        streams: int | None = None,
        checkpoint_sha256: str = "",
    ) -> None:
        import onnxruntime

        spec = get_mode(mode)
        cpus = usable_cpus()
        if streams is None:
            streams = 1 if device_type(device) == "cuda" else min(2, cpus)
        if streams < 1:
            raise ConfigurationError(f"streams must be at least 1, got {streams}")
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise ModelFileError(self.path, missing_file(self.path, "model file"))
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if device_type(device) == "cpu":
            # Each call computes on its own thread and shares the pool's workers: one thread per CPU.
            options.intra_op_num_threads = max(1, cpus - streams + 1)
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=_providers(device))
        except BackendUnavailableError:
            raise
        except Exception as exc:  # onnxruntime reports bad files with its own exception types
            reason = first_line(exc)
            raise ModelFileError(self.path, f"onnxruntime cannot load it ({reason})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        stored = self.metadata.get("mode")
        if stored and stored != spec.name:
            raise ModelFileError(self.path, f"was exported for mode {stored!r}, not {spec.name!r}")
        super().__init__(spec, device, "fp32", streams, checkpoint_sha256 or self.metadata.get("checkpoint_sha256", ""))

    @classmethod
    def rank(cls, device_type: str) -> int | None:
        """On the CPU ~4-6x torch eager (README, "Backends"); on CUDA unmeasured, so below torch."""
        return 50 if device_type == "cpu" else 40

    @classmethod
    def default_batch(cls, device_type: str) -> int:
        """2 on the CPU (measured: 76 ms/frame against 91 at batch 1), 8 on CUDA."""
        return 2 if device_type == "cpu" else 8

    @classmethod
    def load(cls, checkpoint, mode, device, precision="auto", model_file=None) -> OnnxRuntimeBackend:
        """Run `model_file` (checked to come from `checkpoint`), or the cached export of `checkpoint`."""
        cls.resolve_precision(precision, device_type(device))
        sha256 = checkpoint_digest(checkpoint)
        path = Path(model_file) if model_file is not None else cached_unet_export(checkpoint, mode, sha256)
        backend = cls(path, mode, device)
        check_model_file(path, backend.metadata, mode, checkpoint, sha256)
        return backend

    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """float32 (B, 6, 320, 320) and (B, *audio_shape) -> float32 (B, 3, 320, 320) in [0, 1].

        Safe to call from several threads at once; `streams` of them use the CPUs fully.
        """
        self.check_inputs(images, audio)
        feeds = {"input": np.ascontiguousarray(images, np.float32), "audio": np.ascontiguousarray(audio, np.float32)}
        return self.session.run(["output"], feeds)[0]
