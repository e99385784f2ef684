"""Audio feature arrays: loading, validation and the per-frame 16-row audio window (SPEC step 8)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import AudioFeatureError
from .modes import AUDIO_WINDOW, ModeSpec, get_mode

_HALF = AUDIO_WINDOW // 2


class AudioFeatures:
    """The validated audio features of one utterance, one row per output frame.

    Accepts per-frame arrays (F, frame_width values per row in any row shape, e.g. ave (F, 512),
    hubert (F, 2, 1024)) and arrays already windowed per frame (F, *mode.audio_shape). Values are
    held as float32; F is the number of output frames.
    """

    def __init__(self, array: np.ndarray, mode: str | ModeSpec, source: str = "<array>") -> None:
        self.mode = mode if isinstance(mode, ModeSpec) else get_mode(mode)
        self.source = source
        array = np.asarray(array)
        if array.ndim < 2:
            raise AudioFeatureError(
                source, f"expected a 2-D or larger array of features, got shape {array.shape}"
            )
        if array.shape[0] == 0:
            raise AudioFeatureError(source, "holds zero feature rows (no frames to render)")
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise AudioFeatureError(source, f"expected numeric features, got dtype {array.dtype}")
        shape = self.mode.audio_shape
        self.prewindowed = tuple(array.shape[1:]) == shape
        if not self.prewindowed and int(np.prod(array.shape[1:])) != self.mode.frame_width:
            raise AudioFeatureError(
                source,
                f"shape {array.shape} does not fit mode {self.mode.name!r}: expected "
                f"{self.mode.frame_width} values per frame or windowed rows of shape {shape}",
            )
        values = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(values).all():
            bad = int(np.argwhere(~np.isfinite(values.reshape(len(values), -1)))[0, 0])
            raise AudioFeatureError(source, f"holds NaN or infinite values (first at row {bad})")
        if self.prewindowed:
            self._rows = values
        else:
            flat = values.reshape(len(values), self.mode.frame_width)
            pad = np.zeros((_HALF, self.mode.frame_width), np.float32)
            self._rows = np.concatenate([pad, flat, pad])
        self._count = len(values)
        self.row_shape = tuple(array.shape[1:])

    @classmethod
    def load(cls, path: str | os.PathLike[str], mode: str | ModeSpec) -> AudioFeatures:
        """Load a `.npy` feature file and validate it for `mode`."""
        path = Path(path)
        if not path.is_file():
            raise AudioFeatureError(path, "audio feature file not found")
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise AudioFeatureError(path, f"not a readable .npy array ({exc})") from None
        if not isinstance(array, np.ndarray):
            raise AudioFeatureError(path, "expected one .npy array, found an .npz archive")
        return cls(array, mode, source=str(path))

    def __len__(self) -> int:
        return self._count

    def window(self, index: int) -> np.ndarray:
        """The network audio input of output frame `index`, shape mode.audio_shape, float32.

        Per-frame features: rows index-8 .. index+7, rows outside the array being zeros.
        Windowed features: row `index` as it is.
        """
        if not 0 <= index < self._count:
            raise IndexError(f"frame {index} is outside 0..{self._count - 1}")
        if self.prewindowed:
            return self._rows[index]
        return self._rows[index : index + AUDIO_WINDOW].reshape(self.mode.audio_shape)

    def windows(self, indices: list[int] | range) -> np.ndarray:
        """The audio inputs of several frames stacked on a batch axis: (B, *mode.audio_shape)."""
        return np.stack([self.window(i) for i in indices])
