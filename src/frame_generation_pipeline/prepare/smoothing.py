"""The one-euro filter: landmarks smoothed over time so that the crop box holds still while the face does.

Casiez, Roussel and Vogel (CHI 2012): a low-pass filter whose cut-off frequency rises with the
signal's speed, so a still face's detector noise is smoothed away while a moving face is followed
without lag. Here every coordinate of every point is one signal, its speed measured in face sizes
per second so that one setting suits faces of every size.
"""

from __future__ import annotations

import math

import numpy as np

#: Cut-off (Hz) at rest, and how fast it rises with speed (per face size per second): tuned on real
#: footage beside upstream's landmarks (benchmarks/prepare.py) for the least jitter without lag.
MIN_CUTOFF, BETA, DERIVATIVE_CUTOFF = 2.0, 4.0, 1.0


def _alpha(cutoff, rate: float):  # a float or an array, as `cutoff` is
    """The smoothing factor of an exponential filter with `cutoff` Hz sampled at `rate` Hz."""
    return 1.0 / (1.0 + rate / (2 * math.pi * cutoff))


class OneEuroFilter:
    """Smooths a stream of (K, 2) point arrays sampled at `rate` frames per second."""

    def __init__(self, rate: float, min_cutoff: float = MIN_CUTOFF, beta: float = BETA) -> None:
        self.rate, self.min_cutoff, self.beta = rate, min_cutoff, beta
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the past (a new face, or the face was lost): the next value passes unchanged."""
        self._value = self._speed = None

    def __call__(self, points: np.ndarray, face_size: float) -> np.ndarray:
        """The smoothed points for this frame's `points`, a face `face_size` pixels across."""
        if self._value is None or self._speed is None:
            self._value, self._speed = points.astype(np.float64), np.zeros(points.shape)
            return self._value.copy()
        speed = (points - self._value) * self.rate / max(face_size, 1.0)
        self._speed = self._speed + _alpha(DERIVATIVE_CUTOFF, self.rate) * (speed - self._speed)
        alpha = _alpha(self.min_cutoff + self.beta * np.abs(self._speed), self.rate)
        self._value = self._value + alpha * (points - self._value)
        return self._value.copy()
