"""Reading SyncTalk_2D checkpoints and checking them against the network layout of a mode."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CheckpointError
from .modes import MODES, ModeSpec

_PREFIXES = ("module.",)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(
    path: str | os.PathLike[str], prefixes: tuple[str, ...] = _PREFIXES
) -> dict[str, torch.Tensor]:
    """Load a saved state_dict onto the CPU (weights only), dropping a common key prefix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({reason})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(path, "does not hold a state_dict (a mapping of names to tensors)")
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


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


def unet_layout(mode: ModeSpec) -> dict[str, torch.Size]:
    """Key -> shape of the U-Net state_dict for `mode`, built without allocating weights."""
    from .network import SyncTalkUNet

    with torch.device("meta"):
        net = SyncTalkUNet(mode.name)
    return {k: v.shape for k, v in net.state_dict().items()}


def load_unet_state(path: str | os.PathLike[str], mode: ModeSpec) -> dict[str, torch.Tensor]:
    """Read a U-Net checkpoint and refuse it unless it matches `mode`'s layout exactly."""
    state = read_state_dict(path)
    differences = layout_differences(state, unet_layout(mode))
    if not any(differences):
        return state
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
