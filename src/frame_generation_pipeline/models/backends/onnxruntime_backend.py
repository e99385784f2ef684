"""The onnxruntime backend: the exported graph on the CPU (or CUDA with onnxruntime-gpu).

Frames are within 2 per value of the exact path. On a CPU with two or more cores one session
serves two network calls at once, its threads adding up to one per core (docs/performance.md).
"""

from __future__ import annotations

import functools
import logging
from functools import partial
from pathlib import Path

from ...checks import missing_file
from ...devices import device_type, usable_cpus
from ...errors import BackendUnavailableError, ModelFileError, first_line
from .base import Speed
from .exported import ExportedBackend, Graph

logger = logging.getLogger(__name__)

#: What it runs where, and how fast (docs/performance.md).
SPEEDS: dict[tuple[str, str], Speed | None] = {
    # the Xeon (2 cores, AVX-512 BF16, AMX): benchmarks/live.py's network alone, batch 2, no template
    # cache ("network fps"); the EPYC AVX2 measured 11.0 against OpenVINO fp32's 9.1 (batch 2 and 4)
    ("cpu", "fp32"): Speed(20.1, "Xeon, benchmarks/live.py network alone"),
    # no GPU measured yet ("GPU"): a relative figure, below torch's there
    ("cuda", "fp32"): Speed(1.0, "relative, unmeasured on a GPU"),
}


def _providers(device: str) -> list[str]:
    import onnxruntime

    if device_type(device) == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise BackendUnavailableError("onnxruntime here has no CUDA execution provider (install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@functools.cache
def _share_cpu_arena() -> None:
    """Register one CPU arena with onnxruntime's environment, once per process, for sessions to share."""
    import onnxruntime

    memory = onnxruntime.OrtMemoryInfo("Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxruntime.OrtMemType.DEFAULT)
    onnxruntime.create_and_register_allocator(memory, None)


class OnnxRuntimeBackend(ExportedBackend):
    """An exported U-Net run with onnxruntime (arguments: see ExportedBackend)."""

    name = "onnxruntime"
    requires = ("onnxruntime",)
    extra = ""
    speeds = SPEEDS

    def compile_graph(self, path: Path, device: str, precision: str, streams: int) -> tuple[Graph, dict[str, str]]:
        """An onnxruntime session of `path` whose threads add up to one per CPU over `streams` calls."""
        import onnxruntime

        if not path.is_file():
            raise ModelFileError(path, missing_file(path, "model file"))
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if device_type(device) == "cpu":
            # Each call computes on its own thread and shares the pool's workers: one thread per CPU.
            options.intra_op_num_threads = max(1, usable_cpus() - streams + 1)
            # One arena for every session of the process: the template cache's two graphs (and a full one
            # given by its file) take half the memory, and a session's first run no longer pays for growing its own (about
            # a frame's network time each); no memory pattern, whose planning made each session's second
            # run cost twice a frame and later runs nothing less (docs/performance.md, "The template cache").
            _share_cpu_arena()
            options.add_session_config_entry("session.use_env_allocators", "1")
            options.enable_mem_pattern = False
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=_providers(device))
        except BackendUnavailableError:
            raise
        except Exception as exc:  # onnxruntime reports bad files with its own exception types
            reason = first_line(exc)
            raise ModelFileError(path, f"onnxruntime cannot load it ({reason})") from None
        return partial(session.run, None), dict(session.get_modelmeta().custom_metadata_map)

    @classmethod
    def default_batch(cls, device_type: str) -> int:
        """2 on the CPU (measured: 76 ms/frame against 91 at batch 1), 8 on CUDA."""
        return 2 if device_type == "cpu" else 8
