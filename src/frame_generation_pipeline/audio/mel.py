"""Speech samples to the log-mel windows the ave audio encoder reads (docs/contract.md, "Audio path").

numpy only: pre-emphasis 0.97, centred zero-padded STFT (n_fft 800, hop 200, Hann 800), 80 Slaney
mel bands 55-7600 Hz on the magnitude, 20*log10 - 20 dB, scaled to [-4, 4]: 80 mel frames per
second, one window of 16 of them per 25 fps video frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..contract import MODES, SAMPLE_RATE
from ..errors import AudioError

N_FFT, HOP, N_MELS, FMIN, FMAX = 800, 200, 80, 55.0, 7600.0
PREEMPHASIS = 0.97
#: Mel frames per encoder window.
MEL_WINDOW = 16
MEL_FRAMES_PER_SECOND = SAMPLE_RATE / HOP
#: Video frames per second of ave features (one encoder window each).
FEATURE_FPS = MODES["ave"].fps


# Slaney's mel scale: linear (MEL_STEP Hz per mel) below MEL_KNEE Hz, logarithmic above.
MEL_STEP, MEL_KNEE, MEL_LOG_STEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    above = MEL_KNEE / MEL_STEP + np.log(np.maximum(hz, MEL_KNEE) / MEL_KNEE) / MEL_LOG_STEP
    return np.where(hz >= MEL_KNEE, above, hz / MEL_STEP)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    knee_mel = MEL_KNEE / MEL_STEP
    return np.where(mel >= knee_mel, MEL_KNEE * np.exp(MEL_LOG_STEP * (mel - knee_mel)), MEL_STEP * mel)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(80, 401) float32 triangular Slaney-normalised mel filters for 16 kHz and n_fft 800."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
_PAD = N_FFT // 2


def _log_mel(frames: np.ndarray) -> np.ndarray:
    """(k, 800) emphasised, padded signal frames -> (k, 80) float64 normalised log-mel rows.

    The filterbank is applied one frame at a time (a matrix-vector product of fixed shape), so a
    row does not depend on how many rows are computed together: streamed speech gives the same
    values as the whole file, bit for bit.
    """
    magnitude = np.abs(np.fft.rfft(frames * _WINDOW, axis=1))
    bank = mel_filterbank()
    mel = np.stack([bank @ row for row in magnitude]) if len(magnitude) else np.empty((0, N_MELS))
    decibels = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * (decibels + 100) / 100 - 4, -4, 4)


class LogMelStream:
    """The log-mel spectrogram of 16 kHz speech that arrives in pieces.

    Frame t covers emphasised samples [200t - 400, 200t + 400) of the signal with 400 zeros on
    each side, so it is final once sample 200t + 399 has arrived; the last frames wait for
    `finish`, which supplies the closing zeros. Only the samples still needed are kept.
    """

    def __init__(self) -> None:
        self._tail = np.zeros(_PAD)  # emphasised samples from padded index `_start` on (the leading zeros first)
        self._start = 0
        self._previous = 0.0
        self.samples = 0
        self.frames = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Take more samples; return the mel rows (k, 80) that became final."""
        x = np.asarray(samples, dtype=np.float64)
        if len(x) == 0:
            return np.empty((0, N_MELS))
        emphasised = x.copy()
        emphasised[1:] -= PREEMPHASIS * x[:-1]
        emphasised[0] -= PREEMPHASIS * self._previous
        self._previous = float(x[-1])
        self._tail = np.concatenate([self._tail, emphasised])
        self.samples += len(x)
        return self._ready(self._start + len(self._tail))

    def buffered_bytes(self) -> int:
        """Memory held for frames not yet final (at most one frame's 800 samples, plus new input)."""
        return self._tail.nbytes

    def finish(self) -> np.ndarray:
        """Close the signal with its trailing zeros; return the remaining mel rows."""
        self._tail = np.concatenate([self._tail, np.zeros(_PAD)])
        rows = self._ready(self._start + len(self._tail), total=self.samples // HOP + 1)
        return rows

    def _ready(self, available: int, total: int | None = None) -> np.ndarray:
        """Rows whose 800 padded samples are all within the first `available` (up to `total` rows)."""
        last = (available - N_FFT) // HOP  # highest frame whose window fits
        if total is not None:
            last = min(last, total - 1)
        count = last + 1 - self.frames
        if count <= 0:
            return np.empty((0, N_MELS))
        offset = self.frames * HOP - self._start
        frames = np.lib.stride_tricks.sliding_window_view(self._tail[offset:], N_FFT)[::HOP][:count]
        rows = _log_mel(frames)
        self.frames += count
        keep_from = self.frames * HOP - self._start  # the next frame's first sample
        self._tail = self._tail[keep_from:].copy()
        self._start += keep_from
        return rows


def log_mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """(T, 80) float64 normalised log-mel spectrogram of 16 kHz samples, T = len(samples) // 200 + 1."""
    stream = LogMelStream()
    return np.concatenate([stream.push(samples), stream.finish()])


def window_start(k: int) -> int:
    """First mel frame of encoder window k (before the end of the speech moves it back)."""
    return int(MEL_FRAMES_PER_SECOND * (k / FEATURE_FPS))


def window_count(frames: int) -> int:
    """Encoder windows of speech with `frames` mel frames (the feature rows are that + 2)."""
    return int((frames - MEL_WINDOW) / MEL_FRAMES_PER_SECOND * FEATURE_FPS) + 2


def check_long_enough(frames: int, source: str) -> None:
    """AudioError unless there are the 16 mel frames (0.2 s) one encoder window needs."""
    if frames < MEL_WINDOW:
        raise AudioError(
            source, f"too short: {frames} mel frames ({frames / MEL_FRAMES_PER_SECOND:.3f} s), at least "
            f"{MEL_WINDOW} ({MEL_WINDOW / MEL_FRAMES_PER_SECOND:.1f} s) are needed",
        )


def frames_for_samples(count: int, source: str) -> int:
    """Frames (feature rows) of speech of `count` 16 kHz samples; AudioError if shorter than 0.2 s."""
    mel_frames = count // HOP + 1
    check_long_enough(mel_frames, source)
    return window_count(mel_frames) + 2


def mel_windows(mel: np.ndarray, source: str = "<audio>") -> np.ndarray:
    """(n, 1, 80, 16) float32 windows of 16 mel frames, one per video frame at 25 fps (n = F - 2)."""
    frames = mel.shape[0]
    check_long_enough(frames, source)
    count = window_count(frames)
    windows = np.empty((count, 1, N_MELS, MEL_WINDOW), dtype=np.float32)
    for k in range(count):
        start = min(window_start(k), frames - MEL_WINDOW)
        windows[k, 0] = mel[start : start + MEL_WINDOW].T
    return windows


@dataclass(frozen=True)
class SpeechStages:
    """The audio path's stages for one utterance: PCM, log-mel, encoder windows and their encodings."""

    pcm: np.ndarray  # (S,) float32 at 16 kHz
    mel: np.ndarray  # (T, 80) float64
    windows: np.ndarray  # (n, 1, 80, 16) float32
    encodings: np.ndarray  # (n, 512) float32

    @property
    def features(self) -> np.ndarray:
        """The feature rows: [e_0, e_0, ..., e_{n-1}, e_{n-1}] (F = n + 2)."""
        return np.concatenate([self.encodings[:1], self.encodings, self.encodings[-1:]])

    @staticmethod
    def window_of_row(row: int, count: int) -> int:
        """The encoder window that feature row `row` holds, of `count` windows; -1 for a row outside
        0..count+1 (the network sees zeros there)."""
        if row < 0 or row > count + 1:
            return -1
        return min(max(row - 1, 0), count - 1)
