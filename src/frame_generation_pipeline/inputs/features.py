"""Audio feature arrays: files (.npy, or raw .bin with a .json sidecar), validation, and the
per-frame 16-row audio window (contract step 8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..checks import missing_file, require_path
from ..contract import AUDIO_WINDOW, ModeSpec, get_mode
from ..errors import ArgumentTypeError, AudioFeatureError, OutputError

_HALF = AUDIO_WINDOW // 2
#: Suffixes of feature files: NumPy's format, and raw little-endian float32 rows for ports.
FEATURE_FORMATS = ("npy", "bin")
#: Suffixes of speech files: given where a feature file belongs, they are named as speech.
SPEECH_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac")


def sidecar_path(path: Path) -> Path:
    """The JSON description beside a raw `.bin` feature file: `FILE.bin.json`."""
    return path.with_name(path.name + ".json")


def check_description_replaceable(sidecar: Path) -> None:
    """OutputError when `sidecar` exists and is not a feature description (num_frames, feature_size,
    shape): a file of the user's that a `.bin` output would otherwise replace unasked."""
    if not sidecar.exists():
        return
    try:
        description = json.loads(sidecar.read_text())
        ours = isinstance(description, dict) and {"num_frames", "feature_size", "shape"} <= description.keys()
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise OutputError(sidecar, "is not a feature description this command wrote, and a .bin output writes its description "
                                   "there: move that file or give --output another name")


def read_feature_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a `.npy` array, or a `.bin` of little-endian float32 rows described by `FILE.bin.json`.

    The sidecar holds `num_frames`, `feature_size` and `shape` (the whole array's shape).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFeatureError(path, missing_file(path, "audio feature file"))
    if path.suffix == ".bin":
        return _read_bin(path)
    if path.suffix.lower() in SPEECH_SUFFIXES:
        raise AudioFeatureError(path, "is speech, not a feature file (.npy or .bin): compute its features "
                                      "with the audio model (`frame-gen features`, or give it as the audio)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise AudioFeatureError(path, f"not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise AudioFeatureError(path, "expected one .npy array, found an .npz archive")
    return array


def _read_bin(path: Path) -> np.ndarray:
    sidecar = sidecar_path(path)
    try:
        description = json.loads(sidecar.read_text())
        shape = tuple(int(n) for n in description["shape"])
        rows, width = int(description["num_frames"]), int(description["feature_size"])
    except FileNotFoundError:
        raise AudioFeatureError(path, f"raw features need their description {sidecar.name} beside them") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AudioFeatureError(sidecar, f"expected JSON with num_frames, feature_size and shape ({exc})") from None
    if not shape or shape[0] != rows or int(np.prod(shape[1:])) != width:
        raise AudioFeatureError(sidecar, f"shape {list(shape)} disagrees with num_frames {rows} and feature_size {width}")
    size = path.stat().st_size
    if size != rows * width * 4:
        raise AudioFeatureError(path, f"holds {size} bytes, its description promises {rows} x {width} float32 = {rows * width * 4}")
    return np.fromfile(path, dtype="<f4").reshape(shape)


def write_feature_array(array: np.ndarray, path: Path, feature_format: str, sidecar: Path | None = None) -> None:
    """Write features at exactly `path`: as `.npy`, or as raw `.bin` with its JSON description at
    `sidecar` (default: `FILE.bin.json` beside it)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if feature_format == "npy":
        with open(path, "wb") as handle:
            np.save(handle, array)  # through a handle: np.save(name) would append ".npy"
        return
    if feature_format != "bin":
        raise AudioFeatureError(path, f"unknown feature format {feature_format!r}: expected one of {', '.join(FEATURE_FORMATS)}")
    array.astype("<f4").tofile(path)
    description = {"num_frames": len(array), "feature_size": int(np.prod(array.shape[1:])), "shape": list(array.shape),
                   "dtype": "float32", "byte_order": "little"}
    (sidecar or sidecar_path(path)).write_text(json.dumps(description, indent=1) + "\n")


class AudioFeatures:
    """The validated audio features of one utterance, one row per output frame.

    Accepts per-frame arrays (F, frame_width values per row in any row shape, e.g. ave (F, 512),
    hubert (F, 2, 1024)) and arrays already windowed per frame (F, *mode.audio_shape). Values are
    held as float32; F is the number of output frames.
    """

    def __init__(self, array: np.ndarray, mode: str | ModeSpec, source: str = "<array>") -> None:
        self.mode = get_mode(mode)
        self.source = source
        if not isinstance(array, np.ndarray):
            raise ArgumentTypeError(f"audio features must be a NumPy array, got {type(array).__name__}")
        if array.ndim < 2:
            raise AudioFeatureError(source, f"expected a 2-D or larger array of features, got shape {array.shape}")
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
        """Load a `.npy` (or `.bin` + `.bin.json`) feature file and validate it for `mode`."""
        return cls(read_feature_array(require_path(path, "audio feature file")), mode, source=str(path))

    def __len__(self) -> int:
        return self._count

    def rows(self) -> np.ndarray:
        """The per-frame rows (F, frame_width) without padding, or the windowed rows as given."""
        return self._rows if self.prewindowed else self._rows[_HALF : _HALF + self._count]

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


def as_features(source: AudioFeatures | np.ndarray | str | os.PathLike[str], mode: str | ModeSpec) -> AudioFeatures:
    """AudioFeatures as given, or built from an array, or loaded from a feature file, for `mode`."""
    if isinstance(source, AudioFeatures):
        return source
    if isinstance(source, np.ndarray):
        return AudioFeatures(source, mode)
    if not isinstance(source, (str, os.PathLike)):
        raise ArgumentTypeError(
            f"audio features must be AudioFeatures, a NumPy array or a feature file path, got {type(source).__name__}"
        )
    return AudioFeatures.load(source, mode)
