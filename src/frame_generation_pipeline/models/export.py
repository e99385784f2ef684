"""ONNX export of the U-Net, checked in onnxruntime against torch before it is kept.

An exported graph takes `input` (B, 6, 320, 320) float32 ([real, masked] BGR / 255) and `audio`
(B, *audio_shape) float32 and returns `output` (B, 3, 320, 320) in [0, 1]; the batch axis is
dynamic. Metadata (mode, audio shape, input layout, checkpoint sha256) travels in the file.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..contract import INPUT_SHAPE, ONNX_OPSETS, ModeSpec
from ..errors import ConfigurationError, ExportError, OutputError
from ..files import atomic_file, describe_os_error
from ..version import __version__
from .cache import PARTS
from .network import SKIP_SHAPES, FirstVisit, RestHalf, SyncTalkUNet
from .onnx_files import SKIP_NAMES, onnx_module

logger = logging.getLogger(__name__)

#: Largest difference to torch an export may show on random inputs.
EXPORT_TOLERANCE = 1e-4
INPUT_LAYOUT = "BGR, CHW, pixel / 255.0, channels [real 0:3, masked 3:6] (rows 5..309, cols 5..314 zeroed)"
OUTPUT_LAYOUT = "BGR, CHW, [0, 1] after sigmoid; pixels = uint8(trunc(output * 255))"
OPSETS = ONNX_OPSETS
#: Batches of the check: one of 2, not the batch of 1 the graph was traced at, so that the check runs the
#: dynamic batch axis (a batch of 1 as well made the check half as long again: a torch forward pass per graph).
_CHECK_BATCHES = (2,)


@dataclass(frozen=True)
class ExportReport:
    """The result of an export: the file and the largest difference to torch found when checking it."""

    path: Path
    opset_version: int
    max_abs_difference: float


def export_graph(
    network: torch.nn.Module,
    examples: dict[str, torch.Tensor],
    output_names: list[str],
    output_path: str | os.PathLike[str],
    opset_version: int,
    metadata: dict[str, str],
    check_inputs: Callable[[torch.Generator, int], dict[str, torch.Tensor]],
    tolerance: float | None = None,
    relative: bool = False,
) -> ExportReport:
    """Export `network` (inputs named as `examples`'s keys, batch axis dynamic) with metadata,
    check it with onnx.checker and against torch in onnxruntime, then move it into place.

    `check_inputs(generator, batch)` makes the random inputs of the check; a difference above
    `tolerance` (default EXPORT_TOLERANCE; with `relative`, times the largest output magnitude
    when that is above 1, output by output) at a batch of 2 fails the export (ExportError) and nothing
    is written.
    """
    onnx = onnx_module()
    if opset_version not in OPSETS:
        raise ConfigurationError(f"opset must be within {OPSETS.start}..{OPSETS.stop - 1}, got {opset_version}")
    network = _on_the_cpu_for_inference(network)
    names = [*examples, *output_names]
    with atomic_file(output_path) as temporary, _write_errors_named(output_path):
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, tuple(examples.values()), str(temporary), input_names=list(examples),
                output_names=output_names, dynamic_axes={name: {0: "batch"} for name in names},
                opset_version=opset_version, dynamo=False,
            )
        model = onnx.load(str(temporary))
        for key, value in {**metadata, "producer": f"frame-generation-pipeline {__version__}"}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(temporary))
        compared = _compare_with_torch(network, temporary, check_inputs)
        base = EXPORT_TOLERANCE if tolerance is None else tolerance
        difference = max(worst for worst, _ in compared)
        for index, (worst, scale) in enumerate(compared):
            limit = base * (max(scale, 1.0) if relative else 1.0)
            if worst > limit:
                raise ExportError(f"{output_path}: exported graph's {output_names[index]} differs from torch by {worst:.2e} (limit {limit:.0e})")
    logger.info("exported %s (opset %d), max difference to torch %.2e", output_path, opset_version, difference)
    return ExportReport(Path(output_path), opset_version, difference)


def _on_the_cpu_for_inference(network: torch.nn.Module) -> torch.nn.Module:
    """`network` itself where it is on the CPU in eval mode already, else a copy made so (the caller's model
    stays on its device and in its mode). Copying the U-Net costs about a CPU-second, a sixth of its export."""
    tensors = itertools.chain(network.parameters(), network.buffers())
    if any(module.training for module in network.modules()) or any(tensor.device.type != "cpu" for tensor in tensors):
        return copy.deepcopy(network).cpu().eval()
    return network


@contextlib.contextmanager
def _write_errors_named(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a failed write (disk full...) inside the exporters into an OutputError naming `path`."""
    try:
        yield
    except OSError as exc:
        raise OutputError(path, f"cannot write the ONNX model ({describe_os_error(exc)})") from None


def _compare_with_torch(network: torch.nn.Module, path: Path, make_inputs: Callable) -> list[tuple[float, float]]:
    """Per output: (largest difference to torch, largest magnitude) over the check's batches."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    compared: list[tuple[float, float]] = []
    for batch in _CHECK_BATCHES:
        inputs = make_inputs(generator, batch)
        with torch.inference_mode():
            expected = network(*inputs.values())
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, {name: value.numpy() for name, value in inputs.items()})
        found = [(float(np.abs(ours - theirs.numpy()).max()), float(np.abs(theirs.numpy()).max()))
                 for ours, theirs in zip(got, expected, strict=True)]
        compared = [(max(a[0], b[0]), max(a[1], b[1])) for a, b in zip(compared, found)] if compared else found
    return compared


def export_unet(
    network: SyncTalkUNet,
    mode: ModeSpec,
    output_path: str | os.PathLike[str],
    opset_version: int = 17,
    checkpoint_sha256: str = "",
    part: str = "full",
) -> ExportReport:
    """Export the U-Net (inputs `input`, `audio`; output `output`) with its mode and checkpoint in the
    metadata; `part` "first" (`input`, `audio` -> `output`, `skip2`..`skip6`) or "rest" (`input`,
    `skip2`..`skip6`, `audio` -> `output`) exports that graph of the template cache instead."""
    if part not in PARTS:
        raise ConfigurationError(f"unknown part {part!r}: expected one of {', '.join(PARTS)}")

    def inputs(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
        images = {"input": torch.rand((batch, *INPUT_SHAPE), generator=generator)}
        skips = {name: torch.rand((batch, channels, side, side), generator=generator)
                 for name, (channels, side) in zip(SKIP_NAMES, SKIP_SHAPES, strict=True)}
        return {**images, **(skips if part == "rest" else {}),
                "audio": torch.randn((batch, *mode.audio_shape), generator=generator)}

    metadata = {
        "mode": mode.name,
        "audio_shape": json.dumps(list(mode.audio_shape)),
        "input_layout": INPUT_LAYOUT,
        "output_layout": OUTPUT_LAYOUT + (", then the skips x2..x6, float32 (B, C, H, W)" if part == "first" else ""),
        "checkpoint_sha256": checkpoint_sha256,
        "part": part,
    }
    module = {"full": network, "first": FirstVisit(network), "rest": RestHalf(network)}[part]
    outputs = ["output", *(SKIP_NAMES if part == "first" else ())]
    # the skips are unbounded activations: their bound is relative to their largest, as for the audio encoder
    return export_graph(module, inputs(torch.Generator().manual_seed(1), 1), outputs, output_path, opset_version,
                        metadata, inputs, relative=part == "first")


#: Largest difference to torch an audio encoder export may show, relative to its largest output when
#: that is above 1: its outputs are unbounded features (2e-5 was measured on outputs up to 6.3 with
#: ORT's and oneDNN's float32 convolutions over 13 layers), not values in [0, 1].
ENCODER_TOLERANCE = 1e-5


def export_audio_encoder(
    network: torch.nn.Module, output_path: str | os.PathLike[str], opset_version: int = 17, checkpoint_sha256: str = ""
) -> ExportReport:
    """Export the ave audio encoder (input `mel` (B, 1, 80, 16), output `features` (B, 512)) with the
    mel parameters and its checkpoint in the metadata, checked against torch within 1e-5 of its
    largest output."""
    from ..audio import mel

    def inputs(generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
        return {"mel": torch.rand((batch, 1, mel.N_MELS, mel.MEL_WINDOW), generator=generator) * 8 - 4}

    metadata = {
        "model": "ave audio encoder",
        "checkpoint_sha256": checkpoint_sha256,
        "input_layout": "log-mel window: (B, 1, 80 mel bands, 16 frames), values in [-4, 4]",
        "mel": json.dumps({"sample_rate": mel.SAMPLE_RATE, "n_fft": mel.N_FFT, "hop": mel.HOP, "window": mel.N_FFT,
                           "n_mels": mel.N_MELS, "fmin": mel.FMIN, "fmax": mel.FMAX, "preemphasis": mel.PREEMPHASIS,
                           "frames_per_window": mel.MEL_WINDOW, "windows_per_second": mel.FEATURE_FPS}),
    }
    examples = {"mel": torch.rand(1, 1, mel.N_MELS, mel.MEL_WINDOW)}
    return export_graph(network, examples, ["features"], output_path, opset_version, metadata, inputs, ENCODER_TOLERANCE,
                        relative=True)
