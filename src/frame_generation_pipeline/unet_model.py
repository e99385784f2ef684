"""The seed's `unet_model` module: UNetModel is the torch backend (bit-exact on the CPU)."""

from __future__ import annotations

from .devices import resolve_device
from .models.backends.torch_backend import PRECISIONS, TorchBackend

UNetModel = TorchBackend

__all__ = ["PRECISIONS", "UNetModel", "resolve_device"]
