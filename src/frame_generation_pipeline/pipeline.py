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
from .contract import get_mode, mode_for_audio_model
from .devices import tune_allocator
from .errors import ConfigurationError
from .files import atomic_directory, atomic_file
from .inputs.features import AudioFeatures, as_features
from .inputs.templates import TemplateSet, as_templates
from .models.backends import EXACT_BACKEND, InferenceBackend, load_backend
from .options import RenderOptions, RenderResult
from .outputs.frames import is_frame_file, write_frames
from .outputs.video import check_container, encode_frames
from .ports.reference import write_bundle
from .render.generator import FrameRenderer

if TYPE_CHECKING:
    from .audio.mel import SpeechStages
    from .models.audio_encoder import AudioEncoder
    from .models.export import ExportReport
    from .models.hubert import HubertEncoder, HubertStages

    AudioModel = AudioEncoder | HubertEncoder

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
    ) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        self.mode = get_mode(mode)
        tune_allocator()
        logger.info("loading %s (%s, backend %s)", self.checkpoint_path, self.mode.name, backend)
        self.model = load_backend(checkpoint_path, self.mode, device, backend, precision, onnx_path)
        self.backend = self.model.name
        self.device = self.model.device
        if batch_size is None:
            batch_size = type(self.model).default_batch(self.device.split(":")[0])
        self.generator = FrameRenderer(self.model, batch_size=batch_size)
        self._audio_models: dict[tuple[str, str], AudioModel] = {}

    def export_model_to_onnx(self, output_path: Path_, opset_version: int = 17) -> ExportReport:
        """Export the checkpoint to ONNX (see TorchBackend.export_to_onnx)."""
        return self._exact_model().export_to_onnx(output_path, opset_version)

    def _exact_model(self) -> InferenceBackend:
        if self.model.exact:
            return self.model
        from .models.backends.torch_backend import TorchBackend

        return TorchBackend(self.checkpoint_path, self.mode, device="cpu")

    def features(self, features: Features = None, audio: Path_ | AudioInfo | None = None, audio_encoder=None,
                 hubert_model=None) -> AudioFeatures:
        """The features to render: given (file, array, AudioFeatures), or computed from speech.

        With `audio_encoder` (a path to `audio_visual_encoder.pth` or a loaded AudioEncoder) ave
        features are computed from `audio`, with `hubert_model` (a local model folder or a loaded
        HubertEncoder) hubert features; giving features and an audio model together is refused.
        """
        if features is not None and (audio_encoder is not None or hubert_model is not None):
            raise ConfigurationError(
                "both audio features and an audio model were given: give one of them (the model computes features from the speech)"
            )
        if features is not None:
            return as_features(features, self.mode)
        if audio is None or (audio_encoder is None and hubert_model is None):
            raise ConfigurationError(
                "no audio features: give a feature file (--audio-features), or the speech (--audio) and an audio model "
                "to compute them: the ave audio encoder (--audio-encoder) or a hubert model folder (--hubert-model)"
            )
        encoder = self.audio_model(audio_encoder, hubert_model)
        logger.info("computing %s features from %s", self.mode.name, getattr(audio, "path", audio))
        return AudioFeatures(encoder.features_from_audio(audio), self.mode, source=str(getattr(audio, "path", audio)))

    def audio_model(self, audio_encoder=None, hubert_model=None) -> AudioModel:
        """The loaded audio model of this checkpoint's mode: one of `audio_encoder` (ave) and
        `hubert_model` (hubert), as given, or loaded from its path once per pipeline."""
        if (audio_encoder is None) == (hubert_model is None):
            raise ConfigurationError(
                "both an ave audio encoder and a hubert model were given: give one" if audio_encoder is not None else
                "no audio model: give the ave audio encoder (--audio-encoder) or a hubert model folder (--hubert-model)"
            )
        kind = "audio_encoder" if audio_encoder is not None else "hubert_model"
        mode_for_audio_model(self.mode.name, kind)  # refuses the audio model of another mode
        given = audio_encoder if audio_encoder is not None else hubert_model
        if not isinstance(given, (str, os.PathLike)):
            return given
        key = (kind, os.path.realpath(given))
        if key not in self._audio_models:
            if kind == "audio_encoder":
                from .models.audio_encoder import AudioEncoder as loader
            else:
                from .models.hubert import HubertEncoder as loader
            self._audio_models[key] = loader(given, device=self.device)
        return self._audio_models[key]

    def _speech_stages(self, audio: Path_ | None, audio_encoder, hubert_model=None) -> SpeechStages | HubertStages:
        """The audio path's stages (ave: PCM, log-mel, encoder windows and outputs; hubert: PCM,
        normalised input, hidden states), for a bundle made from speech."""
        from .audio.speech import load_speech

        encoder = self.audio_model(audio_encoder, hubert_model)
        return encoder.stages(load_speech(audio, first_channel=hubert_model is not None), str(audio))

    def _result(self, output: Path_, frames: int, fps: float, started: float, options: RenderOptions) -> RenderResult:
        return RenderResult(str(output), frames, fps, self.backend, self.device, self.generator.batch_size,
                            time.perf_counter() - started, options)

    def video(
        self, output: Path_, templates: Templates, audio: Path_, features: Features = None,
        audio_encoder=None, options: RenderOptions | None = None, hubert_model=None,
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
        feats = self.features(features, info, audio_encoder, hubert_model)
        count = min(len(feats), options.max_frames or len(feats))
        self._warn_about_timing(info, feats, count, fps, computed=features is None)
        logger.info("rendering %d frames (%.2f s at %g fps) to %s", count, count / fps, fps, output)
        frames = self.generator.iter_frames(templates, feats, options.start_frame, count, blend=options.paste)
        # closing(): on failure the workers stop now, not when the traceback is freed.
        with closing(frames), atomic_file(output) as temporary:
            encode_frames(progress(frames, count, options.show_progress), temporary, fps, info.path, options.crf,
                          options.preset, count, output)
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
        audio_encoder=None, options: RenderOptions | None = None, hubert_model=None,
    ) -> RenderResult:
        """Render one image per frame (`000000.png`, ...) into `output_dir`, replacing it as a whole.

        Frames go to a temporary sibling folder that replaces `output_dir` only when all were
        written: afterwards it holds exactly these frames. A folder holding files that are not
        frames is refused rather than replaced.
        """
        options = options or RenderOptions()
        started = time.perf_counter()
        templates = as_templates(templates, options.use_parsing)
        feats = self.features(features, audio, audio_encoder, hubert_model)
        count = min(len(feats), options.max_frames or len(feats))
        frames = self.generator.iter_frames(templates, feats, options.start_frame, count, blend=options.paste)
        with closing(frames), atomic_directory(output_dir, is_frame_file) as staging:
            write_frames(progress(frames, count, options.show_progress), staging, options.image_format, count)
        return self._result(output_dir, count, self.mode.fps, started, options)

    def reference(
        self, output_dir: Path_, templates: Templates, features: Features = None, audio: Path_ | None = None,
        audio_encoder=None, options: RenderOptions | None = None, hubert_model=None,
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
        from_speech = features is None and (audio_encoder is not None or hubert_model is not None)
        speech = self._speech_stages(audio, audio_encoder, hubert_model) if from_speech else None
        feats = (self.features(features, audio, audio_encoder, hubert_model) if speech is None
                 else AudioFeatures(speech.features, self.mode))
        count = min(len(feats), options.max_frames or len(feats))
        generator = FrameRenderer(exact, batch_size=1)
        write_bundle(generator, templates, feats, output_dir, options.samples, options.start_frame,
                     exact.checkpoint_sha256, frame_count=count, speech=speech, blend=options.paste)
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
