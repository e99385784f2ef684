"""`frame-gen demo`: render a short video from inputs generated on the spot.

Everything the demo needs is made here (a drawn face in a moving scene with 110-point landmarks
and parsing masks, a speech-like sound, random-weight checkpoints in the real layout), so it runs
on a fresh machine with nothing downloaded. The network is untrained: the mouth region shows what
random weights make of it, the point is the whole path from inputs to a playable mp4.
"""

from __future__ import annotations

import logging
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import synthetic

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


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
    samples = np.int16(np.clip(signal / np.abs(signal).max() * 0.8, -1, 1) * 32767)
    path = Path(path)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(samples.tobytes())
    return path


@dataclass(frozen=True)
class DemoInputs:
    """Paths of the generated demo inputs."""

    checkpoint: Path
    audio_encoder: Path
    template_dir: Path
    audio: Path


def make_demo_inputs(folder: str | os.PathLike[str], seconds: float = 3.0) -> DemoInputs:
    """Generate templates, ave U-Net and audio encoder checkpoints and speech for a demo."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    templates = synthetic.make_templates(folder / "template", 24, 640, 360, parsing=True)
    checkpoint = synthetic.save_random_checkpoint(folder / "checkpoint.pth", "ave", seed=0)
    encoder = synthetic.save_random_audio_encoder(folder / "audio_visual_encoder.pth", seed=0)
    audio = write_speech_like_wav(folder / "speech.wav", seconds)
    return DemoInputs(checkpoint, encoder, templates, audio)


def run_demo(output_dir: str | os.PathLike[str], seconds: float = 3.0, show_progress: bool = False) -> Path:
    """Generate the demo inputs under `output_dir`/inputs and render `output_dir`/demo.mp4.

    The ave features are computed from the generated speech with the (random-weight) audio
    encoder, the same path as `frame-gen video --audio-encoder`.
    """
    from .pipeline import FrameGenerationPipeline

    output_dir = Path(output_dir)
    inputs = make_demo_inputs(output_dir / "inputs", seconds)
    logger.info("demo inputs in %s", output_dir / "inputs")
    pipeline = FrameGenerationPipeline(inputs.checkpoint, mode="ave", device=None, batch_size=4)
    video = output_dir / "demo.mp4"
    pipeline.generate_video(
        None, inputs.template_dir, inputs.audio, video, use_parsing=True, preset="veryfast",
        show_progress=show_progress, audio_encoder_path=inputs.audio_encoder,
    )
    return video
