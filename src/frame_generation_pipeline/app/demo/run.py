"""`frame-gen demo`: the trained demo avatar saying a sentence it was not trained on.

Everything the demo needs ships with the package or is made here: the avatar's templates (the
drawn face in its moving scene, 110-point landmarks, parsing masks) are drawn, its ave audio
encoder is regenerated from its seed, and its trained checkpoint and speech clip are copied out
of the package data, so it runs on a fresh machine with nothing downloaded. Beside the video it
writes a contact sheet: frames across the clip under the speech's waveform.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ...audio.speech import load_speech
from ...checks import require_number
from ...contract import SAMPLE_RATE
from ...errors import BackendUnavailableError
from ...files import atomic_directory
from ...options import RenderOptions, RenderResult
from ...pipeline import FrameGenerationPipeline
from . import avatar
from .contact_sheet import write_contact_sheet
from .speech import write_wav

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoInputs:
    """Paths of the demo avatar's files."""

    checkpoint: Path
    audio_encoder: Path
    template_dir: Path
    audio: Path | None


def demo_speech(text: str | None = None) -> np.ndarray:
    """What the demo says, 16 kHz: `text` in the local voice (the [voice] extra), with the silence
    the shipped clip has around it; without `text` the demo's sentence in that voice where it is
    installed, else the shipped clip (espeak-ng)."""
    from ...audio.voice import default_voice, in_silence

    try:
        said = default_voice().speech(avatar.SENTENCE if text is None else text, "--text")
    except BackendUnavailableError:
        if text is not None:
            raise
        with avatar.packaged(avatar.SPEECH) as shipped:
            return load_speech(shipped)
    return in_silence(said, avatar.PAD_SECONDS)


def make_demo_inputs(folder: str | os.PathLike[str], seconds: float | None = None, text: str | None = None,
                     speech: bool = True) -> DemoInputs:
    """Write the demo avatar (checkpoint, audio encoder, templates) and, with `speech`, what it says
    (demo_speech(text), its first `seconds`, all of it by default) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    said = demo_speech(text) if speech else None  # first: an empty text or a missing voice is refused at once
    templates = avatar.make_avatar_templates(folder / "template")
    encoder = avatar.write_demo_audio_encoder(folder / "audio_visual_encoder.pth")
    checkpoint = folder / "avatar_ave.pth"
    with avatar.packaged(avatar.CHECKPOINT) as shipped:
        shutil.copyfile(shipped, checkpoint)
    audio = None
    if said is not None:
        end = len(said) if seconds is None else int(seconds * SAMPLE_RATE)
        audio = write_wav(folder / "speech.wav", said[:end])
    return DemoInputs(checkpoint, encoder, templates, audio)


#: Shortest demo: the audio encoder needs 16 mel frames (0.2 s) of speech.
MIN_SECONDS = 0.2


def run_demo(output_dir: str | os.PathLike[str], seconds: float | None = None, show_progress: bool = False,
             text: str | None = None) -> RenderResult:
    """Write the demo avatar into `output_dir`/inputs, render `output_dir`/demo.mp4 and its
    `output_dir`/contact_sheet.png.

    `seconds` shortens the speech (the whole clip by default); `text` is said instead of the demo's
    sentence (the [voice] extra). The ave features are computed
    from the speech with the avatar's audio encoder, the same path as `frame-gen video
    --audio-encoder`. `output_dir` is replaced as a whole on success (a folder of other files is
    refused); nothing is left behind on failure.
    """
    if seconds is not None:
        require_number(seconds, "--seconds", MIN_SECONDS, low_inclusive=True)
    output_dir = Path(output_dir)
    with atomic_directory(output_dir, "demo") as staging:
        logger.info("writing the demo avatar (templates, speech, checkpoint, audio encoder) in %s, "
                    "renamed to %s when the video is done", staging, output_dir)
        inputs = make_demo_inputs(staging / "inputs", seconds, text)
        assert inputs.audio is not None  # made with its speech
        pipeline = FrameGenerationPipeline(inputs.checkpoint, mode="ave")
        result = pipeline.video(
            staging / "demo.mp4", inputs.template_dir, inputs.audio, audio_encoder=inputs.audio_encoder,
            options=RenderOptions(use_parsing=True, show_progress=show_progress),
        )
        write_contact_sheet(staging / "contact_sheet.png", staging / "demo.mp4", np.asarray(load_speech(inputs.audio)))
    return replace(result, output=str(output_dir / "demo.mp4"))
