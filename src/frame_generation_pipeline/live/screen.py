"""What a viewer of a live session gets from each slot: the image on screen (a dropped slot keeps the
last image of its utterance, or shows where the idle schedule stands before that utterance's first
image) and the audio as 16-bit samples."""

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

    A dropped slot shows the last image of its own utterance; before that utterance has shown one
    (a reply whose first frames were late) it shows what an idle slot on its template would, so the
    avatar goes on from where the idle schedule stands instead of holding the last idle image.

    Args:
        idle_image: what an idle slot on a template index shows (StreamingSession.idle_image).
    """

    def __init__(self, idle_image: Callable[[int], np.ndarray]) -> None:
        self._idle_image = idle_image
        self._last: np.ndarray | None = None
        self._last_utterance: int | None = None

    def show(self, frame: LiveFrame) -> np.ndarray:
        """`frame`'s image; for a dropped slot the last image of its utterance, or the idle image of its template."""
        if frame.image is not None:
            image, owner = frame.image, frame.utterance
        elif self._last is not None and frame.utterance is not None and frame.utterance == self._last_utterance:
            image, owner = self._last, self._last_utterance
        else:
            image, owner = self._idle_image(frame.template), None
        self._last, self._last_utterance = image, owner
        return image

    def show_idle(self, template: int) -> np.ndarray:
        """The idle image of `template`, shown instead of the slot's (an avatar's interrupted speech)."""
        self._last, self._last_utterance = self._idle_image(template), None
        return self._last
