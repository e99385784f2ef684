"""Render jobs for the farm: a JSONL file of them, checked whole (every job's inputs too) before anything runs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ...checks import missing_file
from ...contract import AUDIO_MODELS, mode_for_audio_model
from ...errors import ConfigurationError, FrameGenerationError, InputFileError
from ...files import check_output
from ...options import RenderOptions
from ...outputs.video import DEFAULT_CRF, DEFAULT_PRESET, check_container
from ...render.blend import FEATHER, Blend


@dataclass(frozen=True)
class Job:
    """One video to render: the `video` subcommand's long options, without the dashes; the three
    --blend options are one Blend (as JSON: its `settings`)."""

    checkpoint: str
    template_dir: str
    audio: str
    output: str
    audio_features: str | None = None
    audio_encoder: str | None = None
    hubert_model: str | None = None
    mode: str | None = None
    backend: str = "auto"
    precision: str = "auto"
    onnx: str | None = None
    batch_size: int | None = None
    fps: float | None = None
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    start_frame: int = 0
    max_frames: int | None = None
    parsing: bool = False
    blend: Blend = FEATHER

    def options(self) -> RenderOptions:
        """The RenderOptions of this job (checked: wrong types and values raise)."""
        return RenderOptions(start_frame=self.start_frame, max_frames=self.max_frames, use_parsing=self.parsing,
                             fps=self.fps, crf=self.crf, preset=self.preset, blend=self.blend)

    def as_dict(self) -> dict:
        """The job as the JSON object it came from (defaults filled in)."""
        return {**{field.name: getattr(self, field.name) for field in fields(self) if field.name != "blend"},
                **self.blend.settings()}


_BLEND_KEYS = tuple(FEATHER.settings())
#: Every key a job line may have: Job's fields, the blend's three in place of `blend`.
JOB_KEYS = (*(field.name for field in fields(Job) if field.name != "blend"), *_BLEND_KEYS)
_KEYS = set(JOB_KEYS)
_REQUIRED = ("checkpoint", "template_dir", "audio", "output")


def job_from(data: object, where: str) -> Job:
    """A checked Job from a JSON object (or a Job); ConfigurationError naming `where` and the problem."""
    if isinstance(data, Job):
        data = data.as_dict()
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a JSON object of options, got {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key {unknown[0]!r} (keys are the video options: {', '.join(JOB_KEYS)})")
    missing = [key for key in _REQUIRED if not data.get(key)]
    if missing:
        raise ConfigurationError(f"{where}: missing {missing[0]!r}")
    sources = [key for key in ("audio_features", "audio_encoder", "hubert_model") if data.get(key)]
    if len(sources) > 1:
        raise ConfigurationError(f"{where}: give one of audio_features, audio_encoder and hubert_model, not {' and '.join(sources)}")
    if not sources:
        raise ConfigurationError(f"{where}: give audio_features, or audio_encoder (ave) or hubert_model (hubert) "
                                 "to compute them from the audio")
    fields_: dict[str, Any] = {key: os.fspath(value) if key in _PATHS and value is not None else value for key, value in data.items()}
    blend = {key: fields_.pop(key) for key in _BLEND_KEYS if key in fields_}
    job = Job(**fields_)
    try:
        job = replace(job, blend=Blend.from_settings({**FEATHER.settings(), **blend}),
                      mode=mode_for_audio_model(job.mode, next((s for s in sources if s in AUDIO_MODELS), None)))
        job.options()
    except (ConfigurationError, TypeError) as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return job


_PATHS = {"checkpoint", "template_dir", "audio", "output", "audio_features", "audio_encoder", "hubert_model", "onnx"}


def check_inputs(job: Job, where: str) -> None:
    """The job's inputs checked as `video` checks them before any model loads (its checkpoint, its
    template folder and the templates it uses, its speech, features or audio model, its output against
    its inputs); ConfigurationError naming `where` and the problem."""
    from ...models.audio_models import check_checkpoint_file, describe_audio_model
    from ...plan import plan_render  # OpenCV and the audio stack, loaded here only: `batch --help` lists Job's keys

    try:
        check_checkpoint_file(Path(job.checkpoint))
        plan_render("video", job.output, job.template_dir, job.mode or "ave", job.audio_features, job.audio,
                    describe_audio_model(job.audio_encoder, job.hubert_model), job.options(), job.batch_size,
                    inputs={"--checkpoint": job.checkpoint, "--onnx": job.onnx})
    except FrameGenerationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def read_jobs(path: str | os.PathLike[str], report: str | os.PathLike[str] | None = None) -> list[Job]:
    """Every job of a JSONL file (blank lines and # comments skipped); a bad line is named, none runs.
    The outputs, and the `report` to write, are checked against the job file and every job's files,
    then every job's inputs (check_inputs)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, IsADirectoryError):
        raise InputFileError(path, missing_file(path, "job file")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read the job file ({exc})") from None
    numbered = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
        numbered[number] = job_from(data, f"{path}: line {number}")
    jobs = check_outputs(list(numbered.values()), str(path), report, path)
    for number, job in numbered.items():
        check_inputs(job, f"{path}: line {number}")
    return jobs


def check_outputs(jobs: list[Job], source: str, report: str | os.PathLike[str] | None = None,
                  job_file: str | os.PathLike[str] | None = None) -> list[Job]:
    """The jobs, unless there are none (ConfigurationError), or an output of a job or the `report`
    is, holds or lies inside an input of any job, the `job_file` or another output (OutputError)."""
    if not jobs:
        raise ConfigurationError(f"{source}: holds no jobs")
    inputs = {f"{name} of job {number}": getattr(job, name) for number, job in enumerate(jobs, start=1)
              for name in sorted(_PATHS - {"output"})}
    inputs["job file"] = job_file
    outputs = {f"of job {number}": job.output for number, job in enumerate(jobs, start=1)}
    for number, job in enumerate(jobs, start=1):
        others = {label: output for label, output in outputs.items() if label != f"of job {number}"}
        check_output(job.output, f"the output of job {number}", inputs, outputs=others)
        check_container(job.output)
    if report is not None:
        check_output(report, "--report", inputs, outputs=outputs)
    return jobs
