"""FrameGenerationPipeline: a checkpoint loaded once, rendered into videos, frame folders and
reference bundles from templates and speech or features (paths or in-memory objects)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tqdm import tqdm

from .audio.ffmpeg import AudioInfo, probe_audio
from .contract import get_mode
from .errors import ConfigurationError
from .files import atomic_directory, atomic_file
from .inputs.features import AudioFeatures, as_features
from .inputs.templates import TemplateSet, as_templates
from .models.backends import EXACT_BACKEND, InferenceBackend, load_backend
from .options import RenderOptions, RenderResult
from .outputs.frames import is_frame_file, write_frames
from .outputs.video import VideoEncoder, check_container
from .ports.reference import write_bundle
from .render.generator import FrameGenerator
from .render.template_cache import TemplateCache

if TYPE_CHECKING:
    from .audio.mel import SpeechStages
    from .models.audio_encoder import AudioEncoder
    from .models.export import ExportReport

logger = logging.getLogger(__name__)

T = TypeVar("T")
Templates = TemplateSet | str | os.PathLike[str]
Features = AudioFeatures | str | os.PathLike[str] | None
Path_ = str | os.PathLike[str]


def progress(frames: Iterator[T], total: int, enabled: bool) -> Iterator[T]:
    """Wrap `frames` in a tqdm bar (frames/s, time left) shown only on a terminal when enabled."""
    return iter(tqdm(frames, total=total, unit="frame", disable=None if enabled else True, dynamic_ncols=True))


class FrameGenerationPipeline:
    """Loads a checkpoint once and renders frames, videos and reference bundles.

    Args:
        checkpoint_path: a SyncTalk_2D 328 checkpoint (state_dict, `module.` prefix accepted).
        mode: "ave", "hubert" or "wenet".
        device: "cpu", "cuda", "cuda:N", or None / "auto" for CUDA when available.
        backend: "auto" (the fastest installed for the device; frames within 2 per value of the
            exact path), "torch" (bit-exact on the CPU), "onnxruntime" or "openvino".
        batch_size: frames per network call; None picks the backend's measured default.
        onnx_path: an exported graph for onnxruntime / openvino (it must come from this
            checkpoint; no torch weights are loaded then). None uses the export cache.
        precision: "auto", "fp32", "bf16" (OpenVINO on CPUs with bf16, torch on CUDA), "fp16" (CUDA).
        template_cache: where the network's template half is kept per template, shared with whatever
            else is given it (live sessions, other pipelines); None: one of its default size.

    Raises:
        ConfigurationError: unknown mode, backend, precision or device.
        CheckpointError, ModelFileError: the checkpoint or exported model is unusable or of another mode.
    """

    def __init__(
        self,
        checkpoint_path: Path_,
        mode: str = "ave",
        device: str | None = None,
        backend: str = "auto",
        batch_size: int | None = None,
        onnx_path: Path_ | None = None,
        precision: str = "auto",
        template_cache: TemplateCache | None = None,
    ) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        self.mode = get_mode(mode)
        logger.info("loading %s (%s, backend %s)", self.checkpoint_path, self.mode.name, backend)
        self.model = load_backend(checkpoint_path, self.mode, device, backend, precision, onnx_path)
        self.backend = self.model.name
        self.device = self.model.device
        if batch_size is None:
            batch_size = type(self.model).default_batch(self.device.split(":")[0])
        self.template_cache = TemplateCache() if template_cache is None else template_cache
        self.generator = FrameGenerator(self.model, batch_size=batch_size, template_cache=self.template_cache)

    def export_model_to_onnx(self, output_path: Path_, opset_version: int = 17) -> ExportReport:
        """Export the checkpoint to ONNX (see TorchBackend.export_to_onnx)."""
        return self._exact_model().export_to_onnx(output_path, opset_version)

    def _exact_model(self) -> InferenceBackend:
        if self.model.exact:
            return self.model
        from .models.backends.torch_backend import TorchBackend

        return TorchBackend(self.checkpoint_path, self.mode, device="cpu")

    def features(self, features: Features = None, audio: Path_ | AudioInfo | None = None, audio_encoder=None) -> AudioFeatures:
        """The features to render: given (file, array, AudioFeatures), or computed from speech.

        With `audio_encoder` (a path to `audio_visual_encoder.pth` or a loaded AudioEncoder) ave
        features are computed from `audio`; giving both features and an encoder is refused.
        """
        if features is not None and audio_encoder is not None:
            raise ConfigurationError(
                "both audio features and an audio encoder were given: give one of them (the encoder computes features from the speech)"
            )
        if features is not None:
            return as_features(features, self.mode)
        encoder = self._encoder(audio, audio_encoder)
        logger.info("computing ave features from %s", getattr(audio, "path", audio))
        return AudioFeatures(encoder.features_from_audio(audio), self.mode, source=str(getattr(audio, "path", audio)))

    def _encoder(self, audio: Path_ | AudioInfo | None, audio_encoder) -> AudioEncoder:
        """The ave audio encoder to compute features from `audio` with (refusing what cannot be done)."""
        if audio_encoder is None or audio is None:
            raise ConfigurationError(
                "no audio features: give a feature file (--audio-features), or the speech (--audio) and "
                "the ave audio encoder (--audio-encoder) to compute them"
            )
        if self.mode.name != "ave":
            raise ConfigurationError(
                f"the audio encoder computes ave features, but the checkpoint's mode is {self.mode.name!r}: "
                "give --audio-features for this mode"
            )
        from .models.audio_encoder import AudioEncoder

        return audio_encoder if isinstance(audio_encoder, AudioEncoder) else AudioEncoder(audio_encoder, device=self.device)

    def _speech_stages(self, audio: Path_ | None, audio_encoder) -> SpeechStages:
        """The audio path's stages (PCM, log-mel, encoder windows and outputs), for a bundle made from speech."""
        from .audio.speech import load_speech

        return self._encoder(audio, audio_encoder).stages(load_speech(audio), str(audio))

    def _result(self, output: Path_, frames: int, fps: float, started: float, options: RenderOptions) -> RenderResult:
        return RenderResult(str(output), frames, fps, self.backend, self.device, self.generator.batch_size,
                            time.perf_counter() - started, options)

    def video(
        self, output: Path_, templates: Templates, audio: Path_, features: Features = None,
        audio_encoder=None, options: RenderOptions | None = None,
    ) -> RenderResult:
        """Render a video with the speech `audio`, encoded once (H.264 + AAC), and say what was done.

        Frames stream straight into one ffmpeg process. The video lasts exactly F / fps seconds
        for F frames: longer speech is cut, shorter speech padded with silence (both warned
        about when they differ by more than a frame). The file is written under a temporary
        name beside `output` and renamed on success; on failure an existing file is untouched.
        """
        options = options or RenderOptions()
        started = time.perf_counter()
        check_container(output)
        fps = options.fps or self.mode.fps
        info = probe_audio(audio)
        templates = as_templates(templates, options.use_parsing)
        feats = self.features(features, info, audio_encoder)
        count = min(len(feats), options.max_frames or len(feats))
        self._warn_about_timing(info, feats, count, fps, computed=features is None)
        logger.info("rendering %d frames (%.2f s at %g fps) to %s", count, count / fps, fps, output)
        frames = self.generator.iter_frames(templates, feats, options.start_frame, count)
        # closing(): on failure the workers stop now, not when the traceback is freed.
        with closing(frames), atomic_file(output) as temporary:
            rendered = progress(frames, count, options.show_progress)
            first = next(rendered)
            height, width = first.shape[:2]
            with VideoEncoder(temporary, width, height, fps, info.path, options.crf, options.preset, count, output) as encoder:
                encoder.write(first)
                for frame in rendered:
                    encoder.write(frame)
        return self._result(output, count, fps, started, options)

    def _warn_about_timing(self, info: AudioInfo, features: AudioFeatures, count: int, fps: float, computed: bool) -> None:
        if fps != self.mode.fps:
            logger.warning(
                "fps %g is not the %s features' rate (%d per second): lip sync will drift (the features cover "
                "%.2f s, the video shows them in %.2f s)", fps, self.mode.name, self.mode.fps,
                count / self.mode.fps, count / fps,
            )
        if computed or info.duration is None or count < len(features):
            return
        video = count / fps
        if abs(info.duration - video) > 1 / fps:
            what = "cut" if info.duration > video else "padded with silence"
            logger.warning("the speech %s lasts %.2f s but the features give %.2f s of video (%d frames at %g fps): "
                           "the speech is %s", info.path, info.duration, video, count, fps, what)

    def frames(
        self, output_dir: Path_, templates: Templates, features: Features = None, audio: Path_ | None = None,
        audio_encoder=None, options: RenderOptions | None = None,
    ) -> RenderResult:
        """Render one image per frame (`000000.png`, ...) into `output_dir`, replacing it as a whole.

        Frames go to a temporary sibling folder that replaces `output_dir` only when all were
        written: afterwards it holds exactly these frames. A folder holding files that are not
        frames is refused rather than replaced.
        """
        options = options or RenderOptions()
        started = time.perf_counter()
        templates = as_templates(templates, options.use_parsing)
        feats = self.features(features, audio, audio_encoder)
        count = min(len(feats), options.max_frames or len(feats))
        frames = self.generator.iter_frames(templates, feats, options.start_frame, count)
        with closing(frames), atomic_directory(output_dir, is_frame_file) as staging:
            write_frames(progress(frames, count, options.show_progress), staging, options.image_format, count)
        return self._result(output_dir, count, self.mode.fps, started, options)

    def reference(
        self, output_dir: Path_, templates: Templates, features: Features = None, audio: Path_ | None = None,
        audio_encoder=None, options: RenderOptions | None = None,
    ) -> RenderResult:
        """Write a lossless reference bundle for ports, always with the exact torch backend on the CPU.

        Every frame is rendered (streamed, nothing held); `options.samples` of them, spread over
        the video with the first and the last, are saved with their network input, audio window,
        raw network output, template and landmarks.
        """
        options = options or RenderOptions()
        started = time.perf_counter()
        exact = self._exact_model()
        if exact is not self.model:
            logger.info("reference bundles are made with the exact %s backend on the CPU", EXACT_BACKEND)
        templates = as_templates(templates, options.use_parsing)
        speech = self._speech_stages(audio, audio_encoder) if features is None and audio_encoder is not None else None
        feats = self.features(features, audio, audio_encoder) if speech is None else AudioFeatures(speech.features, self.mode)
        count = min(len(feats), options.max_frames or len(feats))
        generator = FrameGenerator(exact, batch_size=1)
        write_bundle(generator, templates, feats, output_dir, options.samples, options.start_frame,
                     exact.checkpoint_sha256, frame_count=count, speech=speech)
        return replace(self._result(output_dir, count, self.mode.fps, started, options), backend=exact.name, device="cpu", batch_size=1)

    def generate_video(
        self, audio_features_path: Path_ | None, template_dir: Templates, audio_path: Path_, output_path: Path_,
        start_frame: int = 0, fps: float | None = None, crf: int = 20, use_parsing: bool = False,
        preset: str = "veryfast", show_progress: bool = False, audio_encoder_path: Path_ | None = None,
    ) -> str:
        """The seed's call: `video` with positional paths; returns the output path."""
        options = RenderOptions(start_frame=start_frame, fps=fps, crf=crf, use_parsing=use_parsing,
                                preset=preset, show_progress=show_progress)
        return self.video(output_path, template_dir, audio_path, audio_features_path, audio_encoder_path, options).output

    def generate_frames_only(
        self, audio_features_path: Path_, template_dir: Templates, output_dir: Path_, start_frame: int = 0,
        use_parsing: bool = False, image_format: str = "png", show_progress: bool = False,
    ) -> list[str]:
        """The seed's call: `frames`; returns the frame paths in order."""
        options = RenderOptions(start_frame=start_frame, use_parsing=use_parsing, image_format=image_format,
                                show_progress=show_progress)
        result = self.frames(output_dir, template_dir, audio_features_path, options=options)
        return [str(path) for path in sorted(Path(result.output).iterdir())]

    def generate_reference_outputs(
        self, audio_features_path: Path_, template_dir: Templates, output_dir: Path_, num_sample_frames: int = 10,
        start_frame: int = 0, use_parsing: bool = False,
    ) -> str:
        """The seed's call: `reference`; returns the bundle folder."""
        options = RenderOptions(start_frame=start_frame, use_parsing=use_parsing, samples=num_sample_frames)
        return self.reference(output_dir, template_dir, audio_features_path, options=options).output
