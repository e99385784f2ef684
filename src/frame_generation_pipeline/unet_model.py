"""UNetModel: a checkpoint loaded once onto a device, with batched inference."""

from __future__ import annotations

import copy
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .checkpoint import file_sha256, load_unet_state
from .errors import ConfigurationError
from .modes import get_mode
from .network import SyncTalkUNet, fold_batchnorm

if TYPE_CHECKING:
    from .onnx_model import ExportReport

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or "auto" -> CUDA when available, else CPU; refuse CUDA when there is none."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigurationError(f"unknown device {device!r}: expected cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(f"device {device!r} was asked for, but this torch sees no CUDA GPU")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigurationError(f"unsupported device {device!r}: expected cpu, cuda, cuda:N or auto")
    return resolved


PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class UNetModel:
    """A SyncTalk_2D 328 U-Net loaded from a checkpoint, ready for inference.

    Args:
        checkpoint_path: a state_dict saved by SyncTalk_2D training (`module.` prefixes accepted).
        mode: "ave", "hubert" or "wenet"; the checkpoint must have that mode's layout.
        device: "cpu", "cuda", "cuda:N", or None / "auto" for CUDA when available.
        precision: "fp32", or on CUDA "fp16" / "bf16" (outputs are returned as float32).
        optimize: fold BatchNorm into the convolutions and use channels_last. None: on CUDA only,
            so that the CPU path stays bit-exact to the spec (optimised frames move by up to 1-2
            per value).

    Raises:
        CheckpointError: missing, unreadable, or of another layout or mode.
        ConfigurationError: unknown mode, precision or unusable device.
    """

    #: One network call at a time: torch already spreads one call over every core.
    streams = 1

    def __init__(
        self,
        checkpoint_path: str | os.PathLike[str],
        mode: str = "ave",
        device: str | torch.device | None = None,
        precision: str = "fp32",
        optimize: bool | None = None,
    ) -> None:
        self.mode = get_mode(mode)
        self.checkpoint_path = Path(checkpoint_path)
        self.device = resolve_device(device)
        if precision not in PRECISIONS:
            raise ConfigurationError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        if precision != "fp32" and self.device.type != "cuda":
            raise ConfigurationError(f"precision {precision!r} needs a CUDA device, this model is on {self.device}")
        self.precision = precision
        self.optimized = self.device.type == "cuda" if optimize is None else optimize
        state = load_unet_state(self.checkpoint_path, self.mode)
        network = SyncTalkUNet(self.mode.name)
        network.load_state_dict(state)
        self.network = network.eval().to(self.device)
        self._runtime = self.network
        if self.optimized or precision != "fp32":
            runtime = fold_batchnorm(copy.deepcopy(self.network)) if self.optimized else copy.deepcopy(self.network)
            memory_format = torch.channels_last if self.optimized else torch.contiguous_format
            self._runtime = runtime.to(dtype=PRECISIONS[precision], memory_format=memory_format)
        logger.info(
            "loaded %s (%s) on %s, %s%s", self.checkpoint_path, self.mode.name, self.device, precision,
            ", optimised" if self.optimized else "",
        )

    @cached_property
    def checkpoint_sha256(self) -> str:
        """SHA-256 of the checkpoint file."""
        return file_sha256(self.checkpoint_path)

    def predict(self, image_tensor: torch.Tensor, audio_features: torch.Tensor) -> torch.Tensor:
        """Run the network: (B, 6, 320, 320) and (B, *audio_shape) -> (B, 3, 320, 320) in [0, 1].

        Unbatched inputs ((6, 320, 320) and audio_shape) are taken as a batch of one. The result
        stays on the model's device.
        """
        images = torch.as_tensor(image_tensor, dtype=torch.float32)
        audio = torch.as_tensor(audio_features, dtype=torch.float32)
        if images.dim() == 3:
            images = images[None]
        if audio.dim() == len(self.mode.audio_shape):
            audio = audio[None]
        if tuple(images.shape[1:]) != (6, 320, 320) or tuple(audio.shape[1:]) != self.mode.audio_shape:
            raise ConfigurationError(
                f"expected images (B, 6, 320, 320) and audio (B, {', '.join(map(str, self.mode.audio_shape))}) "
                f"for mode {self.mode.name!r}, got {tuple(images.shape)} and {tuple(audio.shape)}"
            )
        if images.shape[0] != audio.shape[0]:
            raise ConfigurationError(
                f"batch sizes differ: {images.shape[0]} images, {audio.shape[0]} audio windows"
            )
        dtype = PRECISIONS[self.precision]
        memory_format = torch.channels_last if self.optimized else torch.contiguous_format
        with torch.inference_mode():
            images = images.to(self.device, dtype, non_blocking=True, memory_format=memory_format)
            output = self._runtime(images, audio.to(self.device, dtype, non_blocking=True))
            return output.float()

    def run(self, images: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """Batched inference on host arrays: float32 (B, 6, 320, 320), (B, *audio_shape) -> (B, 3, 320, 320)."""
        images_t, audio_t = torch.from_numpy(images), torch.from_numpy(audio)
        if self.device.type == "cuda":  # page-locked buffers make the copies asynchronous
            images_t, audio_t = images_t.pin_memory(), audio_t.pin_memory()
        return self.predict(images_t, audio_t).cpu().numpy()

    def export_to_onnx(self, output_path: str | os.PathLike[str], opset_version: int = 17) -> ExportReport:
        """Export to ONNX (inputs `input`, `audio`, output `output`, dynamic batch), checked against torch.

        The export is run in onnxruntime on random inputs at batch sizes 1 and 3 and refused
        (ExportError, nothing written) if it differs from torch by more than 1e-4. The mode, audio
        shape, input layout and the checkpoint's sha256 are stored in the model's metadata.
        """
        from .onnx_model import export_onnx

        return export_onnx(self.network, self.mode, output_path, opset_version, self.checkpoint_sha256)
