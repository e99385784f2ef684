"""A speech-like sound for tests and benchmarks (voiced syllables with gliding pitch, moving
formants and pauses), and writing 16 kHz mono WAVs."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from ...contract import SAMPLE_RATE


def write_speech_like_wav(path: str | os.PathLike[str], seconds: float, seed: int = 0) -> Path:
    """Write a 16 kHz mono WAV of voiced syllables (gliding pitch, moving formants, pauses)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 140 + 25 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    syllable_rate = 4.0
    syllable = np.floor(t * syllable_rate).astype(int)
    formant = rng.uniform(400, 900, syllable.max() + 1)[syllable]
    voiced = sum(
        np.sin(h * phase) / h * np.exp(-(((h * pitch) - formant) ** 2) / (2 * 350.0**2))
        + 0.3 * np.sin(h * phase) / h
        for h in range(1, 16)
    )
    within = t * syllable_rate - syllable
    envelope = np.sin(np.pi * np.clip(within / 0.8, 0, 1)) ** 2
    envelope *= rng.uniform(0, 1, syllable.max() + 1)[syllable] > 0.15
    signal = voiced * envelope + 0.01 * rng.normal(size=t.shape)
    return write_wav(path, signal / np.abs(signal).max() * 0.8)


def write_wav(path: str | os.PathLike[str], samples: np.ndarray) -> Path:
    """Write 16 kHz mono float samples (-1..1, clipped) as a 16-bit WAV."""
    path = Path(path)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(np.int16(np.clip(samples, -1, 1) * 32767).tobytes())
    return path
