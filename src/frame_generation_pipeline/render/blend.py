"""The seamless paste after contract step 13: the generated square feathered into the template's
crop (weights cached per crop size), its colours first matched to the template's where asked.

Works on the crop only (never on a copy of the whole frame). `FEATHER` (`Blend()`) is the default
wherever frames are shown: a weakly trained checkpoint's square, whose border differs from the
template, would otherwise be a visible box. `NO_BLEND` (mode "none") is the contract's exact paste,
upstream's, and changes nothing: what ports reproduce (docs/contract.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..checks import require_int
from ..contract import BLEND_MODES, BORDER, CROP_SIZE, DEFAULT_BLEND_WIDTH
from ..errors import ArgumentTypeError, ConfigurationError

#: The colour match scales each channel's spread by at most this factor (or its inverse).
MAX_COLOR_GAIN = 2.0


@dataclass(frozen=True)
class Blend:
    """How the generated square joins the template: "feather" (a weight rising from 0 at the
    square's edge to 1 `width` frame pixels inside; the default), optionally with the colour match
    (`color_match`, feather only), or "none" (the exact paste, upstream's)."""

    mode: str = "feather"
    width: int = DEFAULT_BLEND_WIDTH
    color_match: bool = False

    def __post_init__(self) -> None:
        if self.mode not in BLEND_MODES:
            raise ConfigurationError(f"blend must be one of {', '.join(BLEND_MODES)}, got {self.mode!r}")
        require_int(self.width, "blend_width", 1)
        if not isinstance(self.color_match, bool):
            raise ArgumentTypeError(f"color_match must be True or False, got {self.color_match!r}")
        if self.color_match and self.mode != "feather":
            raise ConfigurationError("color_match needs blend 'feather' (blend 'none' is the exact paste)")

    @property
    def feathered(self) -> bool:
        """True when the paste is feathered (anything but the contract's exact paste)."""
        return self.mode == "feather"

    def settings(self) -> dict[str, object]:
        """The settings under the CLI's names without dashes (a farm job's keys): blend, blend_width, color_match."""
        return {"blend": self.mode, "blend_width": self.width, "color_match": self.color_match}

    def record(self) -> dict[str, object]:
        """The settings as a reference bundle records them: {"blend": "none"} for the exact paste."""
        return self.settings() if self.feathered else {"blend": self.mode}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Blend:
        """The settings under the keys `settings` writes (a bundle's metadata, a farm job); a missing
        key takes its default (a bundle older than the feather records nothing: "none")."""
        return cls(settings.get("blend", "none"), settings.get("blend_width", DEFAULT_BLEND_WIDTH),
                   settings.get("color_match", False))


#: The contract's exact paste (upstream's frames; reference bundles and ports).
NO_BLEND = Blend("none")
#: The feathered paste, the default wherever frames are shown.
FEATHER = Blend()


def checked_blend(blend: object) -> Blend:
    """`blend` when it is a Blend; ArgumentTypeError otherwise (the three settings travel as one)."""
    if not isinstance(blend, Blend):
        raise ArgumentTypeError(f"blend must be a Blend (render/blend.py; none, feather with its width and colour match), "
                                f"got {blend!r}")
    return blend


def _ramp(size: int, width: int) -> np.ndarray:
    """Per pixel along one axis of a crop `size` long: 0 up to the square's edge (BORDER/CROP_SIZE
    of the crop in), rising as a smoothstep to 1 at `width` pixels further in, from both ends."""
    centres = np.arange(size, dtype=np.float64) + 0.5
    inside = np.minimum(centres, size - centres) - size * BORDER / CROP_SIZE
    t = np.clip(inside / width, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@lru_cache(maxsize=32)
def blend_weights(height: int, width: int, blend_width: int) -> np.ndarray:
    """The (height, width, 1) float32 feather weights of a crop: the product of the row and
    column ramps (0 outside the square, 1 from `blend_width` pixels inside). Cached and read-only."""
    weights = (_ramp(height, blend_width)[:, None] * _ramp(width, blend_width)[None, :]).astype(np.float32)
    weights.flags.writeable = False
    return weights[:, :, None]


def color_match(generated: np.ndarray, template: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`generated` (float32 HxWx3) with each channel's mean and spread moved to the template's,
    measured in the band just inside the square's edge (where 0 < weight < 1); the spread's
    factor is held within 1/MAX_COLOR_GAIN..MAX_COLOR_GAIN. Unchanged when the band is empty (a
    1-pixel ramp can step from 0 straight to 1)."""
    band = (weights[:, :, 0] > 0) & (weights[:, :, 0] < 1)
    if not band.any():
        return generated
    ours, theirs = generated[band], template[band].astype(np.float32)
    spread = ours.std(axis=0)
    gain = np.where(spread > 0, theirs.std(axis=0) / np.where(spread > 0, spread, 1), 1)
    gain = np.clip(gain, 1 / MAX_COLOR_GAIN, MAX_COLOR_GAIN).astype(np.float32)
    return (generated - ours.mean(axis=0)) * gain + theirs.mean(axis=0)


def feather(pasted: np.ndarray, original: np.ndarray, blend: Blend) -> np.ndarray:
    """The crop `pasted` (the exact paste, uint8 HxWx3) feathered into the template's `original`
    crop; colour-matched first when `blend.color_match`. Returns a new uint8 crop."""
    weights = blend_weights(pasted.shape[0], pasted.shape[1], blend.width)
    generated = pasted.astype(np.float32)
    if blend.color_match:
        generated = color_match(generated, original, weights)
    base = original.astype(np.float32)
    mixed = base + weights * (generated - base)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
