"""RenderPlan: one render's inputs opened and checked, before any model is loaded (plan_render).

Everything a render needs that can be checked without a network is checked here, once: the
template folder and the headers of the templates the schedule uses, the features (their shape
against the mode) or the speech (probed and decoded once), the outputs against the inputs, and
the batch. What runs below a plan takes it as it is and checks nothing again.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio.ffmpeg import AudioInfo, probe_audio
from .audio.mel import frames_for_samples
from .audio.speech import load_speech
from .contract import SAMPLE_RATE, ModeSpec, get_mode
from .devices import available_memory
from .errors import ConfigurationError
from .files import check_output
from .inputs.features import AudioFeatures, as_features, sidecar_path
from .inputs.templates import TemplateSet, as_templates
from .models.audio_models import AudioModel
from .options import RenderOptions
from .outputs.video import check_container

if TYPE_CHECKING:
    from .audio.mel import SpeechStages
    from .models.hubert import HubertStages
    from .models.speech_encoder import SpeechEncoder

logger = logging.getLogger(__name__)

#: What a render writes: a video file, a frame folder, a reference bundle, a live session's video.
KINDS = ("video", "frames", "reference", "live")
#: Memory one frame in flight takes in a batched network call (activations included), measured
#: for the 328 U-Net in fp32; the batch is capped so that a batch fits in half the free memory.
BYTES_PER_FRAME_IN_FLIGHT = 200 << 20
#: The largest batch a render runs: where frames/s stop growing. On a 2-core AVX-512 CPU the network's
#: core-ms per frame are flat from batch 1 to 32 (OpenVINO bf16 75-78, onnxruntime 128-148) while its
#: memory grows by 170 and 440 MB per frame (benchmarks/batch_size.py); 8 is CUDA's default batch.
MAX_BATCH = 8
_OUTPUT_NAMES = {"video": "--output", "frames": "--output-dir", "reference": "--output-dir", "live": "--output"}

Path_ = str | os.PathLike[str]


@dataclass(frozen=True)
class RenderPlan:
    """A render checked before any model loads (made by `plan_render`).

    Attributes:
        kind: "video", "frames", "reference" or "live".
        output: the file or folder to write.
        mode: the audio mode of the features (and of the checkpoint that renders them).
        templates: the opened template folder; the templates the schedule uses had their headers checked.
        features: the features to render, or None until they are computed from `speech` by `audio_model`.
        audio: the probed speech files (one for a video or features from speech; several for live).
        speech: 16 kHz mono samples of `audio[0]`, decoded once, when `audio_model` computes the features.
        audio_model: the model that computes the features from the speech, or None.
        frame_count: frames to render (max_frames applied; live: the speech's frames).
        fps: frame rate of the output.
        batch_size: frames per network call, capped by the frames and memory; None: the backend's
            default, capped by `batch_for`.
        options: the render's options.
        stages: the audio path's stages, once computed, for a reference bundle made from speech.
    """

    kind: str
    output: Path
    mode: ModeSpec
    templates: TemplateSet
    features: AudioFeatures | None
    audio: tuple[AudioInfo, ...]
    speech: np.ndarray | None = field(repr=False)
    audio_model: AudioModel | None
    frame_count: int
    fps: float
    batch_size: int | None
    options: RenderOptions
    stages: SpeechStages | HubertStages | None = field(default=None, repr=False)

    @property
    def ready_features(self) -> AudioFeatures:
        """The features to render; ConfigurationError while they are still to be computed (see `encoded`)."""
        if self.features is None:
            raise ConfigurationError("the plan's features are still to be computed from its speech by its audio model")
        return self.features

    @property
    def needs_features(self) -> bool:
        """True while the features are still to be computed from the speech by `audio_model`."""
        return self.features is None and self.speech is not None

    def encoded(self, encoder: SpeechEncoder[SpeechStages] | SpeechEncoder[HubertStages]) -> RenderPlan:
        """This plan with its features computed from its speech by a loaded audio model."""
        if self.speech is None or self.features is not None:
            return self
        stages = encoder.stages(self.speech, str(self.audio[0].path))
        features = AudioFeatures(stages.features, self.mode, source=str(self.audio[0].path))
        logger.info("%s: %d %s feature rows", self.audio[0].path, len(features), self.mode.name)
        return replace(self, features=features, speech=None, stages=stages if self.kind == "reference" else None)

    def warn_about_timing(self) -> None:
        """Warn (a line each) when the fps is not the features' rate, or when the speech and the video
        of a complete render are more than one frame apart (the speech is then cut or padded): a cut
        counts the speech's whole frames only, so 31.89 s of speech over 796 frames at 25 fps (797.25)
        is within a frame."""
        count, fps, mode = self.frame_count, self.fps, self.mode
        if fps != mode.fps:
            logger.warning(
                "fps %g is not the %s features' rate (%d per second): lip sync will drift (the features cover "
                "%.2f s, the video shows them in %.2f s)", fps, mode.name, mode.fps, count / mode.fps, count / fps,
            )
        info = self.audio[0]
        if info.duration is None or count < len(self.ready_features):
            return
        video, spoken = count / fps, info.duration * fps  # the speech in frames, the last one maybe partial
        if math.floor(spoken + 1e-6) - count > 1 or count - spoken > 1 + 1e-6:  # more than one whole frame apart
            what = "cut" if info.duration > video else "padded with silence"
            logger.warning("the speech %s lasts %.2f s but the features give %.2f s of video (%d frames at %g fps): "
                           "the speech is %s", info.path, info.duration, video, count, fps, what)

    def batch_for(self, default: int) -> int:
        """The batch to run: the plan's, or `default` (a backend's) capped by the frames and memory."""
        return self.batch_size if self.batch_size is not None else choose_batch(default, self.frame_count, quiet=True)


def choose_batch(requested: int, frames: int, quiet: bool = False) -> int:
    """`requested` capped by MAX_BATCH, the frame count and the memory free now; a warning line when
    it is lowered (unless `quiet`)."""
    memory = available_memory()
    fits = max(1, memory // 2 // BYTES_PER_FRAME_IN_FLIGHT) if memory else requested
    free = f"{memory >> 20} MB are free" if memory else "the free memory is unknown"
    chosen = max(1, min(requested, frames or requested, fits, MAX_BATCH))
    if chosen < requested and not quiet:
        why = f"{frames} frames are rendered" if chosen == frames else \
            "a larger batch adds no speed, only memory (docs/rendering.md)" if chosen == MAX_BATCH else \
            f"a batch takes about {BYTES_PER_FRAME_IN_FLIGHT >> 20} MB per frame and {free}"
        logger.warning("batch size %d is more than this render can use (%s): using %d", requested, why, chosen)
    return chosen


def plan_render(
    kind: str,
    output: Path_,
    templates: TemplateSet | Path_,
    mode: str | ModeSpec = "ave",
    features: AudioFeatures | np.ndarray | Path_ | None = None,
    audio: Path_ | AudioInfo | Sequence[Path_] | None = None,
    audio_model: AudioModel | Path_ | None = None,
    options: RenderOptions | None = None,
    batch_size: int | None = None,
    inputs: Mapping[str, Path_ | None] | None = None,
    extra_outputs: Mapping[str, Path_ | None] | None = None,
) -> RenderPlan:
    """Open and check everything a render of `kind` needs, before any model is loaded.

    `audio_model` (the ave audio encoder's checkpoint) computes the features from `audio`;
    `features` gives them instead. `inputs` names other inputs (argument -> path: the checkpoint,
    an exported model) that no output may overwrite; `extra_outputs` other files the render writes.
    Raises the package's errors (ConfigurationError, TemplateError, AudioError, OutputError...).
    """
    if kind not in KINDS:
        raise ConfigurationError(f"unknown render kind {kind!r}: expected one of {', '.join(KINDS)}")
    options = options or RenderOptions()
    spec = get_mode(mode)
    model = check_audio_model(audio_model, spec, features)
    infos = _probe(audio, kind)
    output = Path(output)
    _check_outputs(kind, output, templates, features, infos, model, inputs or {}, extra_outputs or {})
    opened = as_templates(templates, options.use_parsing)
    sources = _read(kind, spec, features, infos, model)
    count = sources.frames if kind == "live" else min(sources.frames, options.max_frames or sources.frames)
    if kind == "live":
        opened.schedule(1, options.start_frame, "--start-frame")  # the start frame is one of the templates
        opened.validate(list(range(options.start_frame, len(opened))))
    else:
        opened.validate(opened.schedule(count, options.start_frame, "--start-frame"))
    batch = None if batch_size is None else choose_batch(batch_size, count)
    fps = options.fps or spec.fps
    return RenderPlan(kind, output, spec, opened, sources.features, infos, sources.speech, model, count, fps, batch, options)


@dataclass(frozen=True)
class Sources:
    """What a render's features come from (read_sources): the features read and checked against the
    mode, or the speech probed (`audio`) and decoded once (`speech`) for `audio_model` to compute
    them from; `frames` available (live: from the speech's durations)."""

    features: AudioFeatures | None
    audio: tuple[AudioInfo, ...]
    speech: np.ndarray | None = field(repr=False)
    audio_model: AudioModel | None
    frames: int


def read_sources(
    kind: str, mode: ModeSpec, features: AudioFeatures | np.ndarray | Path_ | None,
    audio: Path_ | AudioInfo | Sequence[Path_] | tuple[AudioInfo, ...] | None, audio_model: AudioModel | Path_ | None,
) -> Sources:
    """The Sources of a render of `kind` ("features": features alone), the audio model checked first."""
    return _read(kind, mode, features, audio, check_audio_model(audio_model, mode, features))


def _read(
    kind: str, mode: ModeSpec, features: AudioFeatures | np.ndarray | Path_ | None,
    audio: Path_ | AudioInfo | Sequence[Path_] | tuple[AudioInfo, ...] | None, model: AudioModel | None,
) -> Sources:
    if isinstance(audio, tuple) and all(isinstance(item, AudioInfo) for item in audio):
        infos = tuple(item for item in audio if isinstance(item, AudioInfo))
    else:
        infos = _probe(audio, kind)
    if features is not None:
        feats = as_features(features, mode)
        return Sources(feats, infos, None, None, len(feats))
    if kind == "live":
        if model is not None and model.mode == "ave":  # as a video refuses it: too short for one encoder window
            for info in infos:
                frames_for_samples(round((info.duration or 0) * SAMPLE_RATE), str(info.path))
        return Sources(None, infos, None, model, sum(round((info.duration or 0) * mode.fps) for info in infos))
    if model is not None and infos:
        speech = load_speech(infos[0], first_channel=model.first_channel)  # upstream's hubert path reads the first channel
        return Sources(None, infos, speech, model, model.frame_count(len(speech), str(infos[0].path)))
    raise ConfigurationError(
        "no audio features: give a feature file (--audio-features), or the speech (--audio) and an audio model "
        "to compute them: the ave audio encoder (--audio-encoder) or a hubert model folder (--hubert-model)"
    )


def check_audio_model(audio_model: AudioModel | Path_ | None, mode: ModeSpec, features: object) -> AudioModel | None:
    """The audio model (a bare path: the ave encoder's checkpoint) checked against `mode`, its file,
    and `features` (given features and a model together are refused)."""
    if audio_model is None:
        return None
    model = audio_model if isinstance(audio_model, AudioModel) else AudioModel("ave", Path(audio_model))
    if features is not None:
        raise ConfigurationError(f"both audio features and an audio model ({model.argument}) were given: give one of them "
                                 "(the model computes features from the speech)")
    model.check(mode.name)
    return model


def _probe(audio: Path_ | AudioInfo | Sequence[Path_ | AudioInfo] | None, kind: str) -> tuple[AudioInfo, ...]:
    if audio is None:
        if kind in ("video", "live"):
            raise ConfigurationError(f"a {kind} needs the speech (--audio)")
        return ()
    many = list(audio) if kind == "live" and isinstance(audio, Sequence) and not isinstance(audio, str) else [audio]
    return tuple(item if isinstance(item, AudioInfo) else probe_audio(item) for item in many)  # type: ignore[arg-type]


def _check_outputs(
    kind: str, output: Path, templates: object, features: object, audio: tuple[AudioInfo, ...],
    model: AudioModel | None, inputs: Mapping[str, Path_ | None], extra_outputs: Mapping[str, Path_ | None],
) -> None:
    """The outputs can be written and none of them is (or holds) an input."""
    given: dict[str, Path_ | None] = dict(inputs)
    if isinstance(templates, (str, os.PathLike)):
        given["--template-dir"] = templates
    if isinstance(features, (str, os.PathLike)):
        given["--audio-features"] = features
        given["--audio-features' description"] = sidecar_path(Path(features)) if Path(features).suffix == ".bin" else None
    for number, info in enumerate(audio):
        given["--audio" if len(audio) == 1 else f"--audio #{number + 1}"] = info.path
    if model is not None:
        given[model.argument] = model.path
    outputs = {_OUTPUT_NAMES[kind]: output, **extra_outputs}
    for name, path in outputs.items():
        if path is not None:
            others = {other: value for other, value in outputs.items() if other != name}
            check_output(path, name, given, folder=name.endswith("-dir"), outputs=others)
    if kind not in ("frames", "reference"):
        check_container(output)
