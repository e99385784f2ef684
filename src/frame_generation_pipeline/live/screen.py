"""What a viewer of a live session gets from each slot: the image on screen (a dropped slot keeps the
last image shown, or the slot's template before any) and the audio as 16-bit samples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .slot import LiveFrame

#: Float samples are int16 ones divided by this (check_samples, the avatar's TTS input): 2 ** 15.
INT16_SCALE = 32768


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16: times 32768, rounded to the nearest (half to even), clipped
    to [-32768, 32767] (so 1.0 and above give 32767).

    32768, not 32767: it is the inverse of how int16 speech comes in (divided by 32768), so int16
    speech pushed into a session plays out sample for sample; 32767 would move every sample
    towards zero (and truncating instead of rounding, by up to one more step).
    """
    return np.clip(np.round(samples * INT16_SCALE), -INT16_SCALE, INT16_SCALE - 1).astype(np.int16)


class Screen:
    """The image a viewer sees in each slot, in slot order.

    Args:
        template_image: the decoded image of a template index (StreamingSession.template_image).
    """

    def __init__(self, template_image: Callable[[int], np.ndarray]) -> None:
        self._template_image = template_image
        self._last: np.ndarray | None = None

    def show(self, frame: LiveFrame) -> np.ndarray:
        """`frame`'s image; for a dropped slot the last image shown, or its template before any."""
        image = frame.image if frame.image is not None else self._last
        if image is None:
            image = self._template_image(frame.template)
        self._last = image
        return image

    def show_template(self, template: int) -> np.ndarray:
        """Template `template`'s image, shown instead of the slot's (an avatar's interrupted speech)."""
        self._last = self._template_image(template)
        return self._last
