"""The torch backend: the U-Net module itself; bit-exact to the contract in fp32 on the CPU.

torch is imported when a model is made, not with this module: `auto` reads every backend's speeds
without loading the libraries of those it does not take (docs/performance.md, "A warm start").
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...contract import ModeSpec, get_mode
from ...devices import device_type, resolve_device
from ...errors import ConfigurationError
from .base import InferenceBackend, Speed, checkpoint_digest

if TYPE_CHECKING:
    import torch

    from ..export import ExportReport

logger = logging.getLogger(__name__)

#: The precisions the backend runs, by the name of their torch dtype.
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: What it runs where, and how fast (docs/performance.md).
SPEEDS: dict[tuple[str, str], Speed | None] = {
    # the Xeon (2 cores, AVX-512 BF16, AMX): upstream's loop, 3.34 frames/s for a whole 720p render
    # ("Offline video"; its network alone is a little faster, still about 6x below onnxruntime's)
    ("cpu", "fp32"): Speed(3.34, "Xeon, upstream's loop (whole render)"),
    # no GPU measured yet ("GPU"): a relative figure, twice onnxruntime's CUDA one, so that torch stays first there
    ("cuda", "fp32"): Speed(2.0, "relative, unmeasured on a GPU"),
    ("cuda", "fp16"): None,
    ("cuda", "bf16"): None,
}


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of `precision` ("fp32", "fp16", "bf16")."""
    import torch

    return getattr(torch, DTYPES[precision])


class TorchBackend(InferenceBackend):
    """A SyncTalk_2D 328 U-Net loaded from a checkpoint into torch (`UNetModel` adds the seed's `predict`).

    Args:
        checkpoint_path: a state_dict saved by SyncTalk_2D training (`module.` prefixes accepted).
        mode: "ave", "hubert" or "wenet"; the checkpoint must have that mode's layout.
        device: "cpu", "cuda", "cuda:N", or None / "auto" for CUDA when available.
        precision: "fp32", or on CUDA "fp16" / "bf16" (outputs are returned as float32).
        optimize: fold BatchNorm into the convolutions and use channels_last. None: on CUDA only,
            so that the CPU path stays bit-exact (optimised frames move by up to 1-2 per value).
        checkpoint_sha256: the checkpoint's sha256 when the caller has it already; None hashes it.

    Raises:
        CheckpointError: missing, unreadable, or of another layout or mode.
        ConfigurationError: unknown mode, precision or unusable device.
    """

    name = "torch"
    requires = ("torch",)
    extra = ""
    speeds = SPEEDS

    def __init__(
        self,
        checkpoint_path: str | os.PathLike[str],
        mode: str | ModeSpec = "ave",
        device: str | None = None,
        precision: str = "fp32",
        optimize: bool | None = None,
        checkpoint_sha256: str | None = None,
    ) -> None:
        import torch

        from ..checkpoints import load_unet_state
        from ..network import SyncTalkUNet, fold_batchnorm

        spec = get_mode(mode)
        device = resolve_device(device)
        precision = self.resolve_precision(precision, device_type(device))
        if precision != "fp32" and device_type(device) != "cuda":
            raise ConfigurationError(f"precision {precision!r} needs a CUDA device, this model is on {device}")
        self.checkpoint_path = Path(checkpoint_path)
        state = load_unet_state(self.checkpoint_path, spec)
        sha256 = checkpoint_digest(self.checkpoint_path) if checkpoint_sha256 is None else checkpoint_sha256
        super().__init__(spec, device, precision, streams=1, checkpoint_sha256=sha256)
        self.optimized = device_type(device) == "cuda" if optimize is None else optimize
        network = SyncTalkUNet(spec.name)
        network.load_state_dict(state)
        self.network = network.eval().to(device)
        self._runtime = self.network
        if self.optimized or precision != "fp32":
            runtime = fold_batchnorm(copy.deepcopy(self.network)) if self.optimized else copy.deepcopy(self.network)
            memory_format = torch.channels_last if self.optimized else torch.contiguous_format
            # Module.to takes memory_format (torch documents it), its stubs list no overload with it.
            self._runtime = runtime.to(dtype=torch_dtype(precision), memory_format=memory_format)  # type: ignore[call-overload]
        logger.info("loaded %s (%s) into torch on %s, %s%s", self.checkpoint_path, spec.name, device, precision,
                    ", optimised" if self.optimized else "")

    @property
    def exact(self) -> bool:
        """True in fp32, unoptimised, on the CPU: frames are the contract's bit for bit."""
        return self.device == "cpu" and self.precision == "fp32" and not self.optimized

    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """Batched inference on host arrays: float32 (B, 6, 320, 320), (B, *audio_shape) -> (B, 3, 320, 320)."""
        self.check_inputs(images, audio)
        return self._call(self._runtime, [images], audio)[0]

    def first_visit(self, images: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """What `run` gives (bit for bit) and the template half's skips x2..x6 as float32 host arrays."""
        self.check_inputs(images, audio)
        output, *skips = self._call(self._runtime.first_visit, [images], audio)
        return output, tuple(skips)

    def rest(self, images: np.ndarray, skips: Sequence[np.ndarray], audio: np.ndarray) -> np.ndarray:
        """The network's output from its input, the template half's skips and the audio (equal to `run`)."""
        self.check_inputs(images, audio)
        return self._call(self._runtime.rest, [images, *skips], audio)[0]

    def _call(self, function: Callable[..., Any], images: Sequence[np.ndarray], audio: np.ndarray | None = None
              ) -> tuple[np.ndarray, ...]:
        """`function(*images[, audio])` on host arrays moved to the model's device and precision (image-like
        arrays in its memory format); its results as float32 host arrays."""
        import torch

        dtype = torch_dtype(self.precision)
        memory_format = torch.channels_last if self.optimized else torch.contiguous_format
        with torch.inference_mode():
            tensors = [self._to_device(array).to(dtype=dtype, memory_format=memory_format) for array in images]
            if audio is not None:
                tensors.append(self._to_device(audio).to(dtype=dtype))
            results = function(*tensors)
            results = results if isinstance(results, tuple) else (results,)
            return tuple(result.float().cpu().numpy() for result in results)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(array, np.float32))
        if device_type(self.device) == "cuda":  # page-locked buffers make the copies asynchronous
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def export_to_onnx(self, output_path: str | os.PathLike[str], opset_version: int = 17, part: str = "full") -> ExportReport:
        """Export to ONNX (inputs `input`, `audio`, output `output`, dynamic batch), checked against torch;
        `part` "first" or "rest" exports that graph of the template cache instead (docs/contract.md, "The network").

        The export is run in onnxruntime on random inputs at a batch of 2 (traced at 1) and refused
        (ExportError, nothing written) if it differs from torch by more than 1e-4. The mode, audio
        shape, input layout and the checkpoint's sha256 are stored in the model's metadata.
        """
        from ..export import export_unet

        return export_unet(self.network, self.mode, output_path, opset_version, self.checkpoint_sha256, part)
