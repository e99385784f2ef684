"""Speech samples to the log-mel windows the ave audio encoder reads (docs/contract.md, "Audio path").

numpy only: pre-emphasis 0.97, centred zero-padded STFT (n_fft 800, hop 200, Hann 800), 80 Slaney
mel bands 55-7600 Hz on the magnitude, 20*log10 - 20 dB, scaled to [-4, 4]: 80 mel frames per
second, one window of 16 of them per 25 fps video frame.
"""

from __future__ import annotations

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


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
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


def stft_magnitude(signal: np.ndarray) -> np.ndarray:
    """|STFT| (401, frames), centred with zero padding, periodic Hann window of 800."""
    padded = np.pad(np.asarray(signal, dtype=np.float64), N_FFT // 2)
    count = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[:: HOP][:count]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    return np.abs(np.fft.rfft(frames * window, axis=1)).T


def log_mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """(T, 80) float64 normalised log-mel spectrogram of 16 kHz samples."""
    emphasised = np.asarray(samples, dtype=np.float64).copy()
    emphasised[1:] -= PREEMPHASIS * np.asarray(samples[:-1], dtype=np.float64)
    mel = mel_filterbank() @ stft_magnitude(emphasised)
    decibels = 20 * np.log10(np.maximum(1e-5, mel)) - 20
    return np.clip(8 * (decibels + 100) / 100 - 4, -4, 4).T


def mel_windows(mel: np.ndarray, source: str = "<audio>") -> np.ndarray:
    """(n, 1, 80, 16) float32 windows of 16 mel frames, one per video frame at 25 fps (n = F - 2)."""
    frames = mel.shape[0]
    if frames < MEL_WINDOW:
        raise AudioError(
            source, f"too short: {frames} mel frames ({frames / MEL_FRAMES_PER_SECOND:.3f} s), at least "
            f"{MEL_WINDOW} ({MEL_WINDOW / MEL_FRAMES_PER_SECOND:.1f} s) are needed",
        )
    count = int((frames - MEL_WINDOW) / MEL_FRAMES_PER_SECOND * FEATURE_FPS) + 2
    windows = np.empty((count, 1, N_MELS, MEL_WINDOW), dtype=np.float32)
    for k in range(count):
        start = int(MEL_FRAMES_PER_SECOND * (k / FEATURE_FPS))
        end = start + MEL_WINDOW
        if end > frames:
            start, end = frames - MEL_WINDOW, frames
        windows[k, 0] = mel[start:end].T
    return windows
