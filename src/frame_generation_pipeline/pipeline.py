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
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm import tqdm

from .audio.ffmpeg import AudioInfo
from .contract import get_mode
from .devices import device_type
from .errors import ConfigurationError
from .files import MANIFEST, atomic_directory, atomic_file
from .inputs.features import AudioFeatures
from .inputs.templates import TemplateSet, as_templates
from .models.audio_models import AudioModels
from .models.backends import EXACT_BACKEND, InferenceBackend
from .options import RenderOptions, RenderResult
from .outputs.frames import write_frames
from .outputs.video import encode_frames
from .plan import RenderPlan, plan_render, read_sources
from .ports.reference import write_bundle
from .render.blend import FEATHER, Blend
from .render.fidelity import exact_model
from .render.generator import FrameRenderer
from .render.ladder import load_ladder
from .render.template_cache import TemplateCache

if TYPE_CHECKING:
    from .models.backends.torch_backend import TorchBackend
    from .models.export import ExportReport
    from .models.speech_encoder import SpeechEncoder

    AudioModelGiven = SpeechEncoder[Any] | str | os.PathLike[str] | None

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
        backend: "auto" (the fastest installed for the device and precision), "torch" (bit-exact on the CPU), "onnxruntime", "openvino".
        batch_size: frames per network call; None picks the backend's measured default. Each render's
            plan caps it by the frames rendered and the free memory.
        onnx_path: an exported graph for onnxruntime / openvino (it must come from this
            checkpoint; no torch weights are loaded then). None uses the export cache.
        precision: "auto" (bf16 where the CPU has it and its check passes, else fp32; docs/contract.md), "fp32", "bf16", "fp16" (CUDA).
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
        self.onnx_path = None if onnx_path is None else Path(onnx_path)
        self.mode = get_mode(mode)
        logger.info("loading %s (%s, backend %s)", self.checkpoint_path, self.mode.name, backend)
        self.ladder = load_ladder(checkpoint_path, self.mode, device, backend, precision, onnx_path)
        self.model = self.ladder.model
        self.backend = self.model.name
        self.device = self.model.device
        #: The batch asked for (capped per render by its plan); None: the backend's default.
        self.batch_request = batch_size
        self.template_cache = TemplateCache() if template_cache is None else template_cache
        self.generator = FrameRenderer(self.model, batch_size=self.batch_of(self.model), template_cache=self.template_cache)
        self.audio_models = AudioModels(self.device)

    @property
    def batch_size(self) -> int:
        """Frames per network call of this pipeline's renders (a render's plan may cap it)."""
        return self.generator.batch_size

    def iter_frames(self, templates: Templates, features: AudioFeatures | np.ndarray | Path_, start_frame: int = 0,
                    frame_count: int | None = None, blend: Blend = FEATHER) -> Iterator[np.ndarray]:
        """Lazily yield the finished frames (HxWx3 uint8 BGR) of `features` on `templates`, one per
        feature row (`frame_count` of them), rendered as `video` renders them (`renderer`), pasted as
        `blend` says (feathered by default; NO_BLEND for upstream's frames)."""
        opened = as_templates(templates)
        yield from self.renderer(opened).iter_frames(opened, features, start_frame, frame_count, blend=blend)

    def batch_of(self, model: InferenceBackend) -> int:
        """The batch asked for, or `model`'s default (before a plan caps it)."""
        return self.batch_request or type(model).default_batch(device_type(model.device))

    def model_for(self, templates: TemplateSet, speech: SpeechEncoder[Any] | None = None) -> InferenceBackend:
        """The model `templates` render with, decided once per set (render/ladder.py): its check runs real speech
        through `speech`, else the audio model this pipeline loaded last, else seeded windows."""
        return self.ladder.model_for(templates, speech or self.audio_models.latest())

    def fidelity_db(self, templates: TemplateSet, speech: SpeechEncoder[Any] | None = None) -> float | None:
        """The fidelity check's dB that decided `templates`' model (None where none ran; see model_for)."""
        return self.ladder.fidelity_db(templates, speech or self.audio_models.latest())

    def renderer(self, templates: TemplateSet, plan: RenderPlan | None = None) -> FrameRenderer:
        """The FrameRenderer of `templates` (on `model_for(templates)`), capped by `plan`; `generator` where the same."""
        own = self.generator.batch_size if (model := self.model_for(templates)) is self.model else self.batch_of(model)
        batch = own if plan is None else plan.batch_for(own)
        keep = model is self.model and batch == self.generator.batch_size
        return self.generator if keep else FrameRenderer(model, batch_size=batch, template_cache=self.template_cache)

    def export_model_to_onnx(self, output_path: Path_, opset_version: int = 17) -> ExportReport:
        """Export the checkpoint to ONNX (see TorchBackend.export_to_onnx)."""
        return self._exact_model().export_to_onnx(output_path, opset_version)

    def _exact_model(self) -> TorchBackend:
        return exact_model(self.checkpoint_path, self.mode, self.model)

    def audio_model(self, audio_encoder: AudioModelGiven = None, hubert_model: AudioModelGiven = None) -> SpeechEncoder[Any]:
        """The loaded audio model of this checkpoint's mode: one of `audio_encoder` (ave) and
        `hubert_model` (hubert), as given, or loaded from its path once per pipeline."""
        if (audio_encoder is None) == (hubert_model is None):
            raise ConfigurationError(
                "both an ave audio encoder and a hubert model were given: give one" if audio_encoder is not None else
                "no audio model: give the ave audio encoder (--audio-encoder) or a hubert model folder (--hubert-model)"
            )
        model = self.audio_models.describe(audio_encoder, hubert_model)
        assert model is not None
        model.check_mode(self.mode.name)
        return self.audio_models.get(model)

    def features(self, features: Features = None, audio: Path_ | AudioInfo | None = None,
                 audio_encoder: AudioModelGiven = None, hubert_model: AudioModelGiven = None) -> AudioFeatures:
        """The features to render: given (file, array, AudioFeatures), or computed from speech.

        With `audio_encoder` (a path to `audio_visual_encoder.pth` or a loaded AudioEncoder) ave
        features are computed from `audio`, with `hubert_model` (a local model folder or a loaded
        HubertEncoder) hubert features; giving features and an audio model together is refused.
        """
        sources = read_sources("features", self.mode, features, audio, self.audio_models.describe(audio_encoder, hubert_model))
        if sources.features is not None:
            return sources.features
        assert sources.audio_model is not None and sources.speech is not None  # features, or speech and its model
        source = str(sources.audio[0].path)
        encoder = self.audio_models.get(sources.audio_model)
        return AudioFeatures(encoder.features_from_samples(sources.speech, source), self.mode, source=source)

    def plan(
        self, kind: str, output: Path_, templates: Templates, features: Features = None,
        audio: Path_ | AudioInfo | None = None, audio_encoder=None, options: RenderOptions | None = None,
        hubert_model=None,
    ) -> RenderPlan:
        """The checked plan of a render of `kind` with this pipeline's mode and batch (see plan_render)."""
        return plan_render(kind, output, templates, self.mode, features, audio, self.audio_models.describe(audio_encoder, hubert_model),
                           options, self.batch_request, inputs={"--checkpoint": self.checkpoint_path, "--onnx": self.onnx_path})

    def render(self, plan: RenderPlan) -> RenderResult:
        """Render a checked plan into its output; features still to be computed are computed first
        (with the audio model this pipeline keeps)."""
        if plan.mode.name != self.mode.name:
            raise ConfigurationError(f"the plan is for mode {plan.mode.name!r}, the checkpoint is {self.mode.name!r}")
        started = time.perf_counter()
        plan = self.with_features(plan)
        renders = {"video": self._video, "frames": self._frames, "reference": self._reference}
        if plan.kind not in renders:
            raise ConfigurationError(f"a {plan.kind} plan is run by a live session, not by FrameGenerationPipeline.render")
        return renders[plan.kind](plan, started)

    def with_features(self, plan: RenderPlan) -> RenderPlan:
        """`plan` with its features computed from its speech (by the audio model this pipeline keeps) where needed."""
        if plan.audio_model is None or not plan.needs_features:
            return plan
        return plan.encoded(self.audio_models.get(plan.audio_model))

    def _result(self, plan: RenderPlan, fps: float, generator: FrameRenderer, started: float) -> RenderResult:
        return RenderResult(str(plan.output), plan.frame_count, fps, generator.model.name, self.device,
                            generator.batch_size, time.perf_counter() - started, plan.options,
                            generator.model.precision, self.fidelity_db(plan.templates))

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
        return self.render(self.plan("video", output, templates, features, audio, audio_encoder, options, hubert_model))

    def _video(self, plan: RenderPlan, started: float) -> RenderResult:
        options, count, fps, info = plan.options, plan.frame_count, plan.fps, plan.audio[0]
        plan.warn_about_timing()
        logger.info("rendering %d frames (%.2f s at %g fps) to %s", count, count / fps, fps, plan.output)
        generator = self.renderer(plan.templates, plan)
        frames = generator.iter_frames(plan.templates, plan.ready_features, options.start_frame, count,
                                       blend=options.blend_for(plan.kind))
        # closing(): on failure the workers stop now, not when the traceback is freed.
        with closing(frames), atomic_file(plan.output) as temporary:
            encode_frames(progress(frames, count, options.show_progress), temporary, fps, info.path, options.crf,
                          options.preset, count, plan.output)
        return self._result(plan, fps, generator, started)

    def frames(
        self, output_dir: Path_, templates: Templates, features: Features = None, audio: Path_ | None = None,
        audio_encoder=None, options: RenderOptions | None = None, hubert_model=None,
    ) -> RenderResult:
        """Render one image per frame (`000000.png`, ...) into `output_dir`, replacing it as a whole.

        Frames go to a temporary sibling folder that replaces `output_dir` only when all were
        written: afterwards it holds exactly these frames. A folder holding files that are not
        frames is refused rather than replaced.
        """
        return self.render(self.plan("frames", output_dir, templates, features, audio, audio_encoder, options, hubert_model))

    def _frames(self, plan: RenderPlan, started: float) -> RenderResult:
        generator = self.renderer(plan.templates, plan)
        frames = generator.iter_frames(plan.templates, plan.ready_features, plan.options.start_frame, plan.frame_count,
                                       blend=plan.options.blend_for(plan.kind))
        with closing(frames), atomic_directory(plan.output, "frames") as staging:
            write_frames(progress(frames, plan.frame_count, plan.options.show_progress), staging,
                         plan.options.image_format, plan.frame_count)
        return self._result(plan, self.mode.fps, generator, started)

    def reference(
        self, output_dir: Path_, templates: Templates, features: Features = None, audio: Path_ | None = None,
        audio_encoder=None, options: RenderOptions | None = None, hubert_model=None,
    ) -> RenderResult:
        """Write a lossless reference bundle for ports, always with the exact torch backend on the CPU.

        Every frame is rendered (streamed, nothing held); `options.samples` of them, spread over
        the video with the first and the last, are saved with their network input, audio window,
        raw network output, template and landmarks.
        """
        return self.render(self.plan("reference", output_dir, templates, features, audio, audio_encoder, options, hubert_model))

    def _reference(self, plan: RenderPlan, started: float) -> RenderResult:
        exact = self._exact_model()
        if exact is not self.model:
            logger.info("reference bundles are made with the exact %s backend on the CPU", EXACT_BACKEND)
        generator = FrameRenderer(exact, batch_size=1)
        write_bundle(generator, plan.templates, plan.ready_features, plan.output, plan.options.samples, plan.options.start_frame,
                     exact.checkpoint_sha256, frame_count=plan.frame_count, speech=plan.stages,
                     blend=plan.options.blend_for(plan.kind))
        return replace(self._result(plan, self.mode.fps, generator, started), device="cpu", fidelity_db=None)

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
        return [str(path) for path in sorted(Path(result.output).iterdir()) if path.name != MANIFEST]

    def generate_reference_outputs(
        self, audio_features_path: Path_, template_dir: Templates, output_dir: Path_, num_sample_frames: int = 10,
        start_frame: int = 0, use_parsing: bool = False,
    ) -> str:
        """The seed's call: `reference`; returns the bundle folder."""
        options = RenderOptions(start_frame=start_frame, use_parsing=use_parsing, samples=num_sample_frames)
        return self.reference(output_dir, template_dir, audio_features_path, options=options).output
