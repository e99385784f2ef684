"""Speech as the audio paths read it: mono float32 at 16 kHz (channel mean, soxr HQ resampling),
exactly as librosa.load(path, sr=16000) returns it; the hubert path takes the first channel. And
the package's own two seconds of speech (`shipped_speech`), what the fidelity check feeds an audio model."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import numpy as np

from ..contract import SAMPLE_RATE
from ..errors import AudioError
from .ffmpeg import AudioInfo, decode_audio, decode_audio_chunks, probe_audio

#: Two seconds of real speech, 16 kHz mono (espeak-ng's en-us-nyc voice: 0.4-2.4 s of the demo's clip).
SHIPPED_SPEECH = Path(__file__).parent / "data" / "check_speech.wav"


def resample(mono: np.ndarray, rate: int) -> np.ndarray:
    """Mono samples at `rate` Hz -> float32 at 16 kHz, ceil(n * 16000 / rate) of them (as librosa)."""
    if rate == SAMPLE_RATE:
        return np.asarray(mono, dtype=np.float32)
    import soxr

    resampled = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    size = int(np.ceil(len(mono) * SAMPLE_RATE / rate))
    return np.asarray(np.pad(resampled, (0, max(0, size - len(resampled))))[:size], dtype=np.float32)


def _mono(samples: np.ndarray, first_channel: bool) -> np.ndarray:
    """Interleaved (samples, channels) as one channel: their mean, or the first (`first_channel`)."""
    mix = samples.shape[1] > 1 and not first_channel
    return samples.mean(axis=1, dtype=np.float32) if mix else samples[:, 0].copy()


def load_speech(source: str | os.PathLike[str] | AudioInfo, first_channel: bool = False) -> np.ndarray:
    """Decode an audio file (wav, mp3, m4a, flac...) to mono float32 samples at 16 kHz.

    Takes a path, or the AudioInfo of a file already probed (so it is not probed twice). Mono is
    the channels' mean (the ave path), or with `first_channel` the first channel (the hubert path).
    """
    info = source if isinstance(source, AudioInfo) else probe_audio(source)
    samples = decode_audio(info)
    if len(samples) == 0:
        raise AudioError(info.path, "holds no samples (the recording is empty)")
    return resample(_mono(samples, first_channel), info.sample_rate)


def stream_speech(source: str | os.PathLike[str] | AudioInfo, seconds: float = 1.0) -> Generator[np.ndarray, None, None]:
    """An audio file's speech as mono float32 at 16 kHz, `seconds` at a time as ffmpeg decodes it (live
    speech starts after its first chunk, not after the whole file); the channels' mean, resampled as
    one stream (soxr HQ). AudioError for a file with no samples, before anything is yielded."""
    import soxr

    info = source if isinstance(source, AudioInfo) else probe_audio(source)
    stream = None if info.sample_rate == SAMPLE_RATE else soxr.ResampleStream(info.sample_rate, SAMPLE_RATE, 1, "float32", "HQ")
    empty = True
    for chunk in decode_audio_chunks(info, seconds):
        mono = _mono(chunk, False)
        empty = empty and len(mono) == 0
        yield mono if stream is None else np.asarray(stream.resample_chunk(mono), dtype=np.float32)
    if empty:
        raise AudioError(info.path, "holds no samples (the recording is empty)")
    if stream is not None:
        yield np.asarray(stream.resample_chunk(np.empty(0, np.float32), last=True), dtype=np.float32)


def shipped_speech() -> np.ndarray:
    """The package's own two seconds of speech (SHIPPED_SPEECH) as 16 kHz mono float32."""
    return load_speech(SHIPPED_SPEECH)
