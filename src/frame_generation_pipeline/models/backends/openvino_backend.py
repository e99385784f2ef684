"""The OpenVINO backend: the exported graph compiled by OpenVINO for the CPU, in fp32 or bf16.

bf16 runs only where the CPU has bf16 instructions (AVX-512 BF16 or AMX); there it is about twice
the speed of fp32 (README, "Backends"), with frames within 2 per value of the exact path. The
compiled model is cached beside the ONNX exports, so a second start skips compilation.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ...contract import ModeSpec, get_mode
from ...devices import cpu_summary, device_type, usable_cpus
from ...errors import BackendUnavailableError, ConfigurationError, ModelFileError, first_line
from ..cache import cache_dir, cached_unet_export, check_model_file, onnx_metadata
from .base import InferenceBackend, checkpoint_digest

logger = logging.getLogger(__name__)

_HINTS = {"fp32": "f32", "bf16": "bf16"}


class OpenVinoBackend(InferenceBackend):
    """An exported U-Net compiled by OpenVINO for the CPU.

    Args:
        model_path: an ONNX graph written by `frame-gen export-onnx` (or the backend's own cache).
        mode: the audio mode; must match the graph's metadata.
        precision: "fp32", "bf16" (CPUs with bf16 instructions only) or "auto" (bf16 where there is).
        streams: network calls that may run at once, each on its own infer request. None: 2 on a
            CPU with 2 or more cores.
    """

    name = "openvino"
    requires = ("openvino",)
    extra = "openvino"
    precisions = ("fp32", "bf16")

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        mode: str | ModeSpec,
        precision: str = "auto",
        streams: int | None = None,
    ) -> None:
        import openvino

        spec = get_mode(mode)
        precision = self.resolve_precision(precision, "cpu")
        cpus = usable_cpus()
        streams = min(2, cpus) if streams is None else streams
        if streams < 1:
            raise ConfigurationError(f"streams must be at least 1, got {streams}")
        self.path = Path(model_path)
        self.metadata = onnx_metadata(self.path)
        core = openvino.Core()
        core.set_property({"CACHE_DIR": str(cache_dir("openvino"))})
        config = {
            "INFERENCE_PRECISION_HINT": _HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": str(streams),
            "INFERENCE_NUM_THREADS": str(cpus),
        }
        try:
            self.compiled = core.compile_model(str(self.path), "CPU", config)
        except RuntimeError as exc:
            reason = first_line(exc)
            raise ModelFileError(self.path, f"OpenVINO cannot compile it ({reason})") from None
        self._requests = threading.local()
        super().__init__(spec, "cpu", precision, streams, self.metadata.get("checkpoint_sha256", ""))

    @classmethod
    def resolve_precision(cls, precision: str, device_type: str) -> str:
        """"auto" -> bf16 where the CPU has bf16 instructions, else fp32; bf16 elsewhere is refused."""
        has_bf16 = cpu_summary()["bf16"]
        if precision == "auto":
            return "bf16" if has_bf16 else "fp32"
        precision = super().resolve_precision(precision, device_type)
        if precision == "bf16" and not has_bf16:
            raise ConfigurationError("precision 'bf16' needs a CPU with AVX-512 BF16 or AMX; this one has neither")
        return precision

    @classmethod
    def rank(cls, device_type: str) -> int | None:
        """With bf16 the fastest on the CPU (about 2x onnxruntime); in fp32 about onnxruntime's speed,
        so ranked just below it; no CUDA."""
        if device_type != "cpu":
            return None
        return 80 if cpu_summary()["bf16"] else 45

    @classmethod
    def default_batch(cls, device_type: str) -> int:
        """4: bf16 measured 18.7 ms/frame at batch 4 on a 2-core AVX-512 CPU (README, "Backends")."""
        return 4

    @classmethod
    def load(cls, checkpoint, mode, device, precision="auto", model_file=None) -> OpenVinoBackend:
        """Compile `model_file` (checked to come from `checkpoint`), or the cached export of `checkpoint`."""
        if device_type(device) != "cpu":
            raise BackendUnavailableError(f"the openvino backend runs on the CPU only, not {device}")
        sha256 = checkpoint_digest(checkpoint)
        path = Path(model_file) if model_file is not None else cached_unet_export(checkpoint, mode, sha256)
        backend = cls(path, mode, precision=precision)
        check_model_file(path, backend.metadata, mode, checkpoint, sha256)
        return backend

    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """float32 (B, 6, 320, 320) and (B, *audio_shape) -> float32 (B, 3, 320, 320); thread-safe."""
        self.check_inputs(images, audio)
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        feeds = {"input": np.ascontiguousarray(images, np.float32), "audio": np.ascontiguousarray(audio, np.float32)}
        return np.array(request.infer(feeds)[0], dtype=np.float32, copy=True)
