"""The OpenVINO backend: the exported graph compiled by OpenVINO for the CPU, in fp32 or bf16.

bf16 runs where the CPU has bf16 instructions (AVX-512 BF16 or AMX): precision `auto` tries it
first there (its speeds below: about 2.2x onnxruntime's fp32 network, docs/performance.md). It moves
frames by more than 2 per value (about 50 dB against the exact path), so a pipeline running it for
`auto` checks it on the user's own checkpoint and templates first (render/fidelity.py). The compiled
model is cached beside the ONNX exports, so a second start skips compilation.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from ...devices import cpu_summary, device_type, usable_cpus
from ...errors import BackendUnavailableError, CacheError, ConfigurationError, ModelFileError, first_line
from ..cache import cache_root, compiled_dir
from ..cache_lock import WRITING_MARK, writing
from ..onnx_files import onnx_metadata
from .base import Speed
from .exported import ExportedBackend, Graph

logger = logging.getLogger(__name__)

_HINTS = {"fp32": "f32", "bf16": "bf16"}
#: What it runs where, and how fast (docs/performance.md): the CPU only.
SPEEDS: dict[tuple[str, str], Speed | None] = {
    # the Xeon (2 cores, AVX-512 BF16, AMX): benchmarks/live.py's network alone, batch 4, no template cache
    # ("network fps"); bf16 on the EPYC BF16: 18.7 ms a frame against onnxruntime fp32's 38
    ("cpu", "fp32"): Speed(18.2, "Xeon, benchmarks/live.py network alone"),
    ("cpu", "bf16"): Speed(44.7, "Xeon, benchmarks/live.py network alone"),
}


class OpenVinoBackend(ExportedBackend):
    """An exported U-Net compiled by OpenVINO for the CPU, each stream on its own infer request
    (arguments: see ExportedBackend; precision "auto" is bf16 where the CPU has it, else fp32)."""

    name = "openvino"
    requires = ("openvino",)
    speeds = SPEEDS

    @classmethod
    def check_device(cls, device: str) -> None:
        """The CPU only."""
        if device_type(device) != "cpu":
            raise BackendUnavailableError(f"the openvino backend runs on the CPU only, not {device}")

    def compile_graph(self, path: Path, device: str, precision: str, streams: int) -> tuple[Graph, dict[str, str]]:
        """`path` compiled for the CPU in `precision`, its compiled form cached beside the export."""
        import openvino

        metadata = onnx_metadata(path)
        core = openvino.Core()
        config = {
            "INFERENCE_PRECISION_HINT": _HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": str(streams),
            "INFERENCE_NUM_THREADS": str(usable_cpus()),
        }
        try:
            with writing(compiled_dir(path)) as folder:  # one process at a time reads and writes what OpenVINO keeps
                core.set_property({"CACHE_DIR": str(folder)})
                if all(entry.name == WRITING_MARK for entry in folder.iterdir()):  # seconds, once: said before
                    logger.info("compiling %s for OpenVINO (%s) once, into the cache (%s)", path.name, precision, folder)
                compiled = core.compile_model(str(path), "CPU", config)
        except RuntimeError as exc:
            reason = f"OpenVINO cannot compile it ({first_line(exc)})"
            if path.is_relative_to(cache_root()):  # the cache's own export: compiled again on the next try
                raise CacheError(f"{path}: {reason}") from None
            raise ModelFileError(path, reason) from None
        logger.debug("%s %s", "loaded from OpenVINO's cache:" if compiled.get_property("LOADED_FROM_CACHE") else "compiled:", path)
        requests = threading.local()

        def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            request = getattr(requests, "request", None)
            if request is None:
                request = requests.request = compiled.create_infer_request()
            results = request.infer(feeds)
            return [np.array(results[output], dtype=np.float32, copy=True) for output in compiled.outputs]

        return run, metadata

    def split_pays(self) -> bool:
        """No: with OpenVINO a first visit (the whole network also giving the skips) costs more than the
        whole network (bf16: 42 core-ms a frame against 33, the rest 30; fp32: 76 against 67, the rest
        59; 2-core AVX-512 EPYC, docs/performance.md), so clips and live sessions run it whole."""
        return False

    @classmethod
    def resolve_precision(cls, precision: str, device_type: str) -> str:
        """"auto" -> bf16 where the CPU has it natively (AVX-512 BF16 or AMX, read now), else fp32."""
        precision = super().resolve_precision(precision, device_type)
        if precision == "bf16" and not cpu_summary()["bf16"]:
            raise ConfigurationError("precision 'bf16' needs a CPU with AVX-512 BF16 or AMX; this one has neither")
        return precision

    @classmethod
    def default_batch(cls, device_type: str) -> int:
        """4: bf16 measured 18.7 ms/frame at batch 4 on a 2-core AVX-512 CPU (docs/rendering.md, "Backends")."""
        return 4
