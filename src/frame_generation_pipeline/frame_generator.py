"""The seed's `frame_generator` module: FrameGenerator with its list- and file-returning calls.

The rendering itself lives in render/generator.py (FrameRenderer); this adds the seed's convenience methods on top.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from .inputs.features import AudioFeatures
from .inputs.templates import TemplateSet
from .outputs.frames import write_frames
from .render.generator import FrameRenderer, InferenceModel, RenderedFrame

__all__ = ["FrameGenerator", "InferenceModel", "RenderedFrame"]


class FrameGenerator(FrameRenderer):
    """Renders output frames from a loaded model (see render.generator.FrameRenderer), plus the
    seed's `generate_frames_from_template_sequence` and `save_frames`."""

    def generate_frames_from_template_sequence(
        self,
        img_dir: str | os.PathLike[str],
        lms_dir: str | os.PathLike[str],
        audio_features: np.ndarray | str | os.PathLike[str] | AudioFeatures,
        start_frame: int = 0,
        parsing_dir: str | os.PathLike[str] | None = None,
    ) -> list[np.ndarray]:
        """Render every frame into a list (memory grows with length: prefer `iter_frames`)."""
        return list(self.iter_frames(TemplateSet(img_dir, lms_dir, parsing_dir), audio_features, start_frame))

    @staticmethod
    def save_frames(
        frames: Iterable[np.ndarray], output_dir: str | os.PathLike[str], image_format: str = "png", count: int | None = None
    ) -> list[str]:
        """Write frames as `{i:06d}.png` (lossless) or `.jpg` into `output_dir` (created); return the paths."""
        os.makedirs(output_dir, exist_ok=True)
        return [str(path) for path in write_frames(frames, output_dir, image_format, count)]
