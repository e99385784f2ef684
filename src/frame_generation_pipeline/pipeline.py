"""FrameGenerationPipeline: the high-level calls, from input files to finished outputs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from tqdm import tqdm

from .audio_encoder import AudioEncoder
from .audio_features import AudioFeatures
from .backends import DEFAULT_BATCH, create_backend, resolve_backend
from .errors import ConfigurationError
from .frame_generator import FrameGenerator
from .outputs import atomic_directory, atomic_file
from .reference import write_bundle
from .templates import TemplateSet
from .unet_model import UNetModel, resolve_device
from .video import DEFAULT_PRESET, PRESETS, VideoEncoder, probe_audio

if TYPE_CHECKING:
    from .onnx_model import ExportReport

logger = logging.getLogger(__name__)

T = TypeVar("T")


def progress(frames: Iterator[T], total: int, enabled: bool) -> Iterator[T]:
    """Wrap `frames` in a tqdm bar (frames/s, time left) shown only on a terminal when enabled."""
    return iter(tqdm(frames, total=total, unit="frame", disable=None if enabled else True, dynamic_ncols=True))


class FrameGenerationPipeline:
    """Loads a checkpoint once and renders frames and videos from templates and audio features.

    Args:
        checkpoint_path: a SyncTalk_2D 328 checkpoint (state_dict, `module.` prefix accepted).
        mode: "ave", "hubert" or "wenet".
        device: "cpu", "cuda", "cuda:N", or None / "auto" for CUDA when available.
        backend: "torch" (bit-exact to the spec on the CPU), "onnxruntime" (faster on the CPU,
            frames within 2 per value of torch's) or "auto" (the fastest measured for the device).
        batch_size: frames per network call; None picks a measured default for backend and device.
        onnx_path: an exported graph for the onnxruntime backend; None exports the checkpoint
            into the cache (keyed by its sha256) on first use.
        precision: "fp32", or with the torch backend on CUDA "fp16" / "bf16".

    Raises:
        ConfigurationError: unknown mode, backend or device.
        CheckpointError: the checkpoint is missing, corrupt or of another mode.
    """

    def __init__(
        self,
        checkpoint_path: str | os.PathLike[str],
        mode: str = "ave",
        device: str | torch.device | None = None,
        backend: str = "torch",
        batch_size: int | None = None,
        onnx_path: str | os.PathLike[str] | None = None,
        precision: str = "fp32",
    ) -> None:
        concrete = resolve_backend(backend, resolve_device(device))  # before the checkpoint is read
        self.model = UNetModel(checkpoint_path, mode=mode, device=device, precision=precision)
        self.mode = self.model.mode
        self.backend, runner = create_backend(concrete, self.model, onnx_path)
        if batch_size is None:
            batch_size = DEFAULT_BATCH[(self.backend, self.model.device.type)]
        self.generator = FrameGenerator(runner, batch_size=batch_size)
        logger.info("backend %s on %s, batch size %d", self.backend, self.model.device, batch_size)

    def export_model_to_onnx(self, output_path: str | os.PathLike[str], opset_version: int = 17) -> ExportReport:
        """Export the loaded checkpoint to ONNX (see UNetModel.export_to_onnx)."""
        return self.model.export_to_onnx(output_path, opset_version)

    def _inputs(
        self,
        audio_features_path: str | os.PathLike[str] | None,
        template_dir: str | os.PathLike[str],
        use_parsing: bool,
        audio_path: str | os.PathLike[str] | None = None,
        audio_encoder_path: str | os.PathLike[str] | None = None,
    ) -> tuple[AudioFeatures, TemplateSet]:
        templates = TemplateSet.from_folder(template_dir, use_parsing=use_parsing)
        if audio_features_path is not None:
            return AudioFeatures.load(audio_features_path, self.mode), templates
        if audio_encoder_path is None or audio_path is None:
            raise ConfigurationError(
                "no audio features: give a feature file (--audio-features), or the speech (--audio) and "
                "the ave audio encoder (--audio-encoder) to compute them"
            )
        if self.mode.name != "ave":
            raise ConfigurationError(
                f"the audio encoder computes ave features, but the checkpoint's mode is {self.mode.name!r}: "
                "give --audio-features for this mode"
            )
        encoder = AudioEncoder(audio_encoder_path, device=self.model.device)
        return AudioFeatures(encoder.features_from_audio(audio_path), self.mode, source=str(audio_path)), templates

    def generate_frames_only(
        self,
        audio_features_path: str | os.PathLike[str],
        template_dir: str | os.PathLike[str],
        output_dir: str | os.PathLike[str],
        start_frame: int = 0,
        use_parsing: bool = False,
        image_format: str = "png",
        show_progress: bool = False,
    ) -> list[str]:
        """Render one image per feature row into `output_dir` and return their paths in frame order.

        Frames are named `000000.png`, `000001.png`... (lossless PNG; "jpg" on request). They are
        written to a temporary folder first and moved into `output_dir` only when all succeeded.
        `show_progress` draws a progress bar on stderr when it is a terminal.
        """
        features, templates = self._inputs(audio_features_path, template_dir, use_parsing)
        frames = self.generator.iter_frames(templates, features, start_frame)
        with closing(frames), atomic_directory(output_dir) as staging:
            shown = progress(frames, len(features), show_progress)
            written = self.generator.save_frames(shown, staging, image_format, count=len(features))
        return [str(Path(output_dir) / Path(p).name) for p in written]

    def generate_video(
        self,
        audio_features_path: str | os.PathLike[str] | None,
        template_dir: str | os.PathLike[str],
        audio_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str],
        start_frame: int = 0,
        fps: float | None = None,
        crf: int = 20,
        use_parsing: bool = False,
        preset: str = DEFAULT_PRESET,
        show_progress: bool = False,
        audio_encoder_path: str | os.PathLike[str] | None = None,
    ) -> str:
        """Render a video with the speech audio, encoded once (H.264 + AAC), and return its path.

        Frames stream straight into one ffmpeg process; nothing is kept in memory or on disk
        between rendering and encoding. The video lasts exactly F / fps seconds for F feature
        rows: longer audio is cut, shorter audio is padded with silence. `fps=None` is the mode's
        rate (25 for ave and hubert, 20 for wenet). With `audio_features_path=None`, ave features
        are computed from `audio_path` with the audio encoder at `audio_encoder_path`. The file is
        written beside `output_path` under a temporary name and renamed on success; on failure an
        existing file is untouched.

        Raises:
            FrameGenerationError: bad input (named in the message) or a failed encode.
        """
        if preset not in PRESETS:
            raise ConfigurationError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
        if not 0 <= crf <= 51:
            raise ConfigurationError(f"crf must be within 0..51, got {crf}")
        fps = self.mode.fps if fps is None else fps
        if fps <= 0:
            raise ConfigurationError(f"fps must be positive, got {fps}")
        info = probe_audio(audio_path)
        features, templates = self._inputs(
            audio_features_path, template_dir, use_parsing, audio_path, audio_encoder_path
        )
        logger.info(
            "rendering %d frames (%.2f s at %g fps, audio %s s) to %s",
            len(features), len(features) / fps, fps, info.duration, output_path,
        )
        frames = self.generator.iter_frames(templates, features, start_frame)
        # closing(): on failure the workers stop now, not when the traceback is freed.
        with closing(frames), atomic_file(output_path) as temporary:
            rendered = progress(frames, len(features), show_progress)
            first = next(rendered)
            height, width = first.shape[:2]
            with VideoEncoder(
                temporary, width, height, fps, audio_path, crf=crf, preset=preset, frame_count=len(features)
            ) as encoder:
                encoder.write(first)
                for frame in rendered:
                    encoder.write(frame)
        return str(output_path)

    def generate_reference_outputs(
        self,
        audio_features_path: str | os.PathLike[str],
        template_dir: str | os.PathLike[str],
        output_dir: str | os.PathLike[str],
        num_sample_frames: int = 10,
        start_frame: int = 0,
        use_parsing: bool = False,
    ) -> str:
        """Write a lossless reference bundle for ports (see `reference`) and return its folder.

        Every frame is rendered (streamed, nothing held); `num_sample_frames` of them, spread over
        the video with the first and the last, are saved with their network input, audio window,
        raw network output, template and landmarks.
        """
        features, templates = self._inputs(audio_features_path, template_dir, use_parsing)
        return str(
            write_bundle(
                self.generator, templates, features, output_dir, num_sample_frames, start_frame,
                checkpoint_sha256=self.model.checkpoint_sha256,
            )
        )
