"""Speech as the audio paths read it: mono float32 at 16 kHz (channel mean, soxr HQ resampling),
exactly as librosa.load(path, sr=16000) returns it; the hubert path takes the first channel."""

from __future__ import annotations

import os

import numpy as np

from ..contract import SAMPLE_RATE
from ..errors import AudioError
from .ffmpeg import AudioInfo, decode_audio, probe_audio


def resample(mono: np.ndarray, rate: int) -> np.ndarray:
    """Mono samples at `rate` Hz -> float32 at 16 kHz, ceil(n * 16000 / rate) of them (as librosa)."""
    if rate == SAMPLE_RATE:
        return np.asarray(mono, dtype=np.float32)
    import soxr

    resampled = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    size = int(np.ceil(len(mono) * SAMPLE_RATE / rate))
    return np.asarray(np.pad(resampled, (0, max(0, size - len(resampled))))[:size], dtype=np.float32)


def load_speech(source: str | os.PathLike[str] | AudioInfo, first_channel: bool = False) -> np.ndarray:
    """Decode an audio file (wav, mp3, m4a, flac...) to mono float32 samples at 16 kHz.

    Takes a path, or the AudioInfo of a file already probed (so it is not probed twice). Mono is
    the channels' mean (the ave path), or with `first_channel` the first channel (the hubert path).
    """
    info = source if isinstance(source, AudioInfo) else probe_audio(source)
    samples = decode_audio(info)
    if len(samples) == 0:
        raise AudioError(info.path, "holds no samples (the recording is empty)")
    mix = info.channels > 1 and not first_channel
    mono = samples.mean(axis=1, dtype=np.float32) if mix else samples[:, 0].copy()
    return resample(mono, info.sample_rate)
