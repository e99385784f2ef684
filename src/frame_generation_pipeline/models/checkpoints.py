"""Reading SyncTalk_2D checkpoints and checking them against the network layout of a mode."""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from ..checks import CHECKPOINT_EXPECTED, missing_file, not_a_checkpoint
from ..contract import MODES, ModeSpec
from ..errors import CheckpointError
from .network import SyncTalkUNet

logger = logging.getLogger(__name__)

_PREFIXES = ("module.",)
#: The key under which training loops (Lightning and most others) save the weights beside their state.
_WRAPPER = "state_dict"


def _what_the_file_is(path: Path, error: Exception) -> str:
    """A short description of a file torch could not load as weights."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PK\x03\x04") and not isinstance(error, pickle.UnpicklingError):
        return "a damaged PyTorch checkpoint (its zip archive cannot be read)"
    return not_a_checkpoint(head) or f"a pickle of Python objects other than tensors; {CHECKPOINT_EXPECTED}"


def read_state_dict(
    path: str | os.PathLike[str], prefixes: tuple[str, ...] = _PREFIXES
) -> dict[str, torch.Tensor]:
    """Load a saved state_dict onto the CPU (weights only) with float tensors in float32, dropping a
    common key prefix; one saved by a training loop as {"state_dict": ..., "epoch": ...} is unwrapped
    (an info line says so)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, missing_file(path, "checkpoint file"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(path, _what_the_file_is(path, exc)) from None
    if isinstance(state, Mapping) and isinstance(state.get(_WRAPPER), Mapping):
        others = sorted(str(key) for key in state if key != _WRAPPER)
        logger.info("%s: a training checkpoint; using the weights under its %r key%s", path, _WRAPPER,
                    f" (not {', '.join(others)})" if others else "")
        state = state[_WRAPPER]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(path, f"does not hold a state_dict (a mapping of names to tensors); {CHECKPOINT_EXPECTED}")
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    # Weights saved in half precision (fp16, bf16) are computed with in float32, as any others.
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def layout_differences(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]
) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, 'key: expected AxB, found CxD' lines) against a layout."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: expected {_shape(expected[k])}, found {_shape(state[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k]
    ]
    return missing, unexpected, wrong


def describe_differences(missing: list[str], unexpected: list[str], wrong: list[str]) -> str:
    """One line summing up layout differences, with the first few of each kind."""
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong)):
        if items:
            first = ", ".join(items[:3])
            parts.append(f"{len(items)} keys {label} (first: {first})")
    return "; ".join(parts)


def _shape(shape: torch.Size) -> str:
    return "x".join(map(str, shape)) or "scalar"


#: The two kinds of checkpoint a render takes, recognised by their keys (to name a swap of the two).
_ENCODER_KEY = re.compile(r"(module\.|audio_encoder\.)?\d+\.conv_block\.\d+\.")
_UNET_PARTS = frozenset({"inc", "down1", "up1", "outc", "audio_model"})
SWAPPED = "the U-Net checkpoint and the audio encoder look swapped: give the U-Net as --checkpoint and " \
          "audio_visual_encoder.pth as --audio-encoder"


def looks_like_audio_encoder(state: Mapping[str, object]) -> bool:
    """True when every key is one of the ave audio encoder's (`0.conv_block.0.weight`...)."""
    return bool(state) and all(_ENCODER_KEY.match(key) for key in state)


def looks_like_unet(state: Mapping[str, object]) -> bool:
    """True when the keys hold the U-Net's parts (inc, down1, up1, outc, audio_model)."""
    return _UNET_PARTS <= {key.removeprefix("module.").split(".")[0] for key in state}


def unet_layout(mode: ModeSpec) -> dict[str, torch.Size]:
    """Key -> shape of the U-Net state_dict for `mode`, built without allocating weights."""
    with torch.device("meta"):
        net = SyncTalkUNet(mode.name)
    return {k: v.shape for k, v in net.state_dict().items()}


def load_unet_state(path: str | os.PathLike[str], mode: ModeSpec) -> dict[str, torch.Tensor]:
    """Read a U-Net checkpoint and refuse it unless it matches `mode`'s layout exactly."""
    state = read_state_dict(path)
    differences = layout_differences(state, unet_layout(mode))
    if not any(differences):
        return state
    if looks_like_audio_encoder(state):
        raise CheckpointError(path, f"holds the ave audio encoder, not a SyncTalk_2D U-Net: {SWAPPED}")
    fits = [m.name for m in MODES.values() if not any(layout_differences(state, unet_layout(m)))]
    if fits:
        raise CheckpointError(
            path,
            f"has the layout of mode {' or '.join(map(repr, fits))}, but mode {mode.name!r} was asked "
            f"for (the audio branches differ): pass --mode {fits[0]}",
        )
    raise CheckpointError(
        path,
        f"not a SyncTalk_2D 328 checkpoint for mode {mode.name!r}: {describe_differences(*differences)}",
    )
