"""`frame-gen demo`: render a short video from inputs generated on the spot.

Everything the demo needs is made here (a drawn face in a moving scene with 110-point landmarks
and parsing masks, a speech-like sound, random-weight checkpoints in the real layout), so it runs
on a fresh machine with nothing downloaded. The network is untrained: the mouth region shows what
random weights make of it, the point is the whole path from inputs to a playable mp4.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ...checks import require_number
from ...files import atomic_directory
from ...options import RenderOptions, RenderResult
from ...pipeline import FrameGenerationPipeline
from . import synthetic
from .speech import write_speech_like_wav

logger = logging.getLogger(__name__)


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


#: Shortest demo: the audio encoder needs 16 mel frames (0.2 s) of speech.
MIN_SECONDS = 0.2


def run_demo(output_dir: str | os.PathLike[str], seconds: float = 3.0, show_progress: bool = False) -> RenderResult:
    """Generate the demo inputs into `output_dir`/inputs and render `output_dir`/demo.mp4.

    The ave features are computed from the generated speech with the (random-weight) audio
    encoder, the same path as `frame-gen video --audio-encoder`. `output_dir` is replaced as a
    whole on success (a folder of other files is refused); nothing is left behind on failure.
    """
    require_number(seconds, "seconds", MIN_SECONDS, low_inclusive=True)
    output_dir = Path(output_dir)
    with atomic_directory(output_dir, "demo") as staging:
        logger.info("generating demo inputs (templates, speech, random-weight checkpoints) in %s, "
                    "renamed to %s when the video is done", staging, output_dir)
        inputs = make_demo_inputs(staging / "inputs", seconds)
        pipeline = FrameGenerationPipeline(inputs.checkpoint, mode="ave")
        result = pipeline.video(
            staging / "demo.mp4", inputs.template_dir, inputs.audio, audio_encoder=inputs.audio_encoder,
            options=RenderOptions(use_parsing=True, show_progress=show_progress),
        )
    return replace(result, output=str(output_dir / "demo.mp4"))
