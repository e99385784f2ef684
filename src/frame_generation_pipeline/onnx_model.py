"""ONNX export of the U-Net and the onnxruntime inference backend.

An exported graph takes `input` (B, 6, 320, 320) float32 ([real, masked] BGR / 255) and `audio`
(B, *audio_shape) float32 and returns `output` (B, 3, 320, 320) in [0, 1]; the batch axis is
dynamic. Metadata (mode, audio shape, input layout, checkpoint sha256) travels in the file.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigurationError, ExportError
from .modes import ModeSpec, get_mode
from .outputs import atomic_file
from .version import __version__

logger = logging.getLogger(__name__)

#: Largest difference to torch an export may show on random inputs.
EXPORT_TOLERANCE = 1e-4
INPUT_LAYOUT = "BGR, CHW, pixel / 255.0, channels [real 0:3, masked 3:6] (rows 5..309, cols 5..314 zeroed)"
_CHECK_BATCHES = (1, 3)


def _onnx_modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ExportError(
            f"the ONNX backend needs onnx and onnxruntime ({exc.name} is missing): "
            "pip install 'frame-generation-pipeline[onnx]'"
        ) from None
    return onnx, onnxruntime


def _providers(device: torch.device) -> list[str]:
    _, onnxruntime = _onnx_modules()
    available = onnxruntime.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ConfigurationError("onnxruntime here has no CUDA execution provider (install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class ExportReport:
    """The result of an export: the file and the largest difference to torch found when checking it."""

    path: Path
    opset_version: int
    max_abs_difference: float


def export_onnx(
    network: torch.nn.Module,
    mode: ModeSpec,
    output_path: str | os.PathLike[str],
    opset_version: int = 17,
    checkpoint_sha256: str | None = None,
) -> ExportReport:
    """Export `network` to ONNX, check it with onnx.checker and onnxruntime, then move it into place.

    The export is run in onnxruntime against torch on random inputs at batch sizes 1 and 3; a
    difference above EXPORT_TOLERANCE fails it (ExportError) and nothing is written.
    """
    onnx, _ = _onnx_modules()
    if not 11 <= opset_version <= 20:
        raise ConfigurationError(f"opset_version must be within 11..20, got {opset_version}")
    network = copy.deepcopy(network).cpu().eval()  # the caller's model stays on its device
    example = (torch.rand(1, 6, 320, 320), torch.rand(1, *mode.audio_shape))
    with atomic_file(output_path) as temporary:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, example, str(temporary), input_names=["input", "audio"], output_names=["output"],
                dynamic_axes={name: {0: "batch"} for name in ("input", "audio", "output")},
                opset_version=opset_version, dynamo=False,
            )
        model = onnx.load(str(temporary))
        metadata = {
            "mode": mode.name,
            "audio_shape": json.dumps(list(mode.audio_shape)),
            "input_layout": INPUT_LAYOUT,
            "output_layout": "BGR, CHW, [0, 1] after sigmoid; pixels = uint8(trunc(output * 255))",
            "checkpoint_sha256": checkpoint_sha256 or "",
            "producer": f"frame-generation-pipeline {__version__}",
        }
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(temporary))
        difference = _compare_with_torch(network, mode, temporary)
        if difference > EXPORT_TOLERANCE:
            raise ExportError(
                f"{output_path}: exported graph differs from torch by {difference:.2e} (limit {EXPORT_TOLERANCE:.0e})"
            )
    logger.info("exported %s (opset %d), max difference to torch %.2e", output_path, opset_version, difference)
    return ExportReport(Path(output_path), opset_version, difference)


def _compare_with_torch(network: torch.nn.Module, mode: ModeSpec, path: Path) -> float:
    session = OnnxUNetModel(path, mode.name, device="cpu")
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for batch in _CHECK_BATCHES:
        images = torch.rand((batch, 6, 320, 320), generator=generator)
        audio = torch.randn((batch, *mode.audio_shape), generator=generator)
        with torch.inference_mode():
            expected = network(images, audio).numpy()
        worst = max(worst, float(np.abs(session.run(images.numpy(), audio.numpy()) - expected).max()))
    return worst


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata properties of an exported model."""
    onnx, _ = _onnx_modules()
    model = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class OnnxUNetModel:
    """An exported U-Net run with onnxruntime (CPU, or CUDA where onnxruntime-gpu is installed).

    Args:
        onnx_path: a graph written by `export_onnx`.
        mode: the audio mode; must match the graph's metadata when it has one.
        device: "cpu" or "cuda".
        streams: network calls that may run at once (from as many threads) in the one session.
            None: 2 on a CPU with 2 or more cores (README, "Throughput"), 1 on CUDA. Frames do
            not depend on it.
    """

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        mode: str,
        device: str | torch.device = "cpu",
        streams: int | None = None,
    ) -> None:
        _, onnxruntime = _onnx_modules()
        self.mode = get_mode(mode)
        self.path = Path(onnx_path)
        self.device = torch.device(device)
        cpus = usable_cpus()
        if streams is None:
            streams = 1 if self.device.type == "cuda" else min(2, cpus)
        if streams < 1:
            raise ConfigurationError(f"streams must be at least 1, got {streams}")
        self.streams = streams
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.device.type == "cpu":
            # Each call computes on its own thread and shares the pool's workers: one thread per CPU.
            options.intra_op_num_threads = max(1, cpus - streams + 1)
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=_providers(self.device))
        except Exception as exc:  # onnxruntime reports bad files with its own exception types
            raise ExportError(f"{self.path}: onnxruntime cannot load it ({str(exc).strip().splitlines()[0]})") from None
        stored = self.session.get_modelmeta().custom_metadata_map.get("mode")
        if stored and stored != self.mode.name:
            raise ConfigurationError(f"{self.path} was exported for mode {stored!r}, not {self.mode.name!r}")

    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """float32 (B, 6, 320, 320) and (B, *audio_shape) -> float32 (B, 3, 320, 320) in [0, 1].

        Safe to call from several threads at once; `streams` of them use the CPUs fully.
        """
        feeds = {"input": np.ascontiguousarray(images, np.float32), "audio": np.ascontiguousarray(audio, np.float32)}
        return self.session.run(["output"], feeds)[0]
