"""The three audio-feature modes of SyncTalk_2D and what each implies for shapes and frame rate."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from .errors import ConfigurationError

#: Number of consecutive feature rows the network sees for one output frame (rows i-8 .. i+7).
AUDIO_WINDOW = 16


@dataclass(frozen=True)
class ModeSpec:
    """Shapes and defaults of one audio mode.

    Attributes:
        name: "ave", "hubert" or "wenet".
        audio_shape: the shape of one network audio input (C, H, W), without the batch axis.
        fps: the frame rate the mode's checkpoints were trained for.
    """

    name: str
    audio_shape: tuple[int, int, int]
    fps: int

    @property
    def frame_width(self) -> int:
        """Number of feature values per output frame (one row of a per-frame feature array)."""
        return prod(self.audio_shape) // AUDIO_WINDOW


MODES: dict[str, ModeSpec] = {
    "ave": ModeSpec("ave", (32, 16, 16), 25),
    "hubert": ModeSpec("hubert", (32, 32, 32), 25),
    "wenet": ModeSpec("wenet", (256, 16, 32), 20),
}


def get_mode(name: str) -> ModeSpec:
    """Return the spec of mode `name`, or raise ConfigurationError naming the valid choices."""
    try:
        return MODES[name]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"unknown mode {name!r}: expected one of {', '.join(MODES)}"
        ) from None
