"""The seed's `unet_model` module: UNetModel, the torch backend with the seed's tensor call `predict`."""

from __future__ import annotations

import numpy as np
import torch

from .devices import resolve_device
from .models.backends.torch_backend import DTYPES, TorchBackend

#: The precisions UNetModel runs, to their torch dtypes.
PRECISIONS = {name: getattr(torch, dtype) for name, dtype in DTYPES.items()}


class UNetModel(TorchBackend):
    """The torch backend (bit-exact on the CPU; arguments: see TorchBackend), also called on tensors."""

    def predict(self, image_tensor: torch.Tensor, audio_features: torch.Tensor) -> torch.Tensor:
        """The seed's call: (B, 6, 320, 320) and (B, *audio_shape) tensors (or one unbatched sample)
        -> (B, 3, 320, 320) float32 in [0, 1] on the model's device; it is `run` on host arrays."""
        images = np.asarray(torch.as_tensor(image_tensor, dtype=torch.float32).cpu())
        audio = np.asarray(torch.as_tensor(audio_features, dtype=torch.float32).cpu())
        if images.ndim == 3:
            images = images[None]
        if audio.ndim == len(self.mode.audio_shape):
            audio = audio[None]
        return torch.from_numpy(self.run(np.ascontiguousarray(images), np.ascontiguousarray(audio))).to(self.device)


__all__ = ["PRECISIONS", "UNetModel", "resolve_device"]
