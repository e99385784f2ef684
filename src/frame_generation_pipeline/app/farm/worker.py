"""What a farm worker does: plan a job (its features and frame count) and render a job or a piece
of it. Plain functions and a plain class, so they run the same in a Ray actor and in-process."""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from ...inputs.features import write_feature_array
from ...inputs.templates import as_templates
from ...outputs.video import encode_frames
from ...pipeline import FrameGenerationPipeline
from ...render.template_cache import TemplateCache
from .jobs import Job


def load_pipeline(job: Job, device: str | None, template_cache: TemplateCache | None = None) -> FrameGenerationPipeline:
    """The pipeline a job asks for (its template half kept in `template_cache`; None: a cache of its own)."""
    assert job.mode is not None  # job_from gives every checked job its mode
    return FrameGenerationPipeline(job.checkpoint, mode=job.mode, device=device, backend=job.backend,
                                   batch_size=job.batch_size, onnx_path=job.onnx, precision=job.precision,
                                   template_cache=template_cache)


def plan(pipeline: FrameGenerationPipeline, job: Job, scratch: Path) -> dict:
    """The job's features written to `scratch` (computed from its speech where asked), its frame count and
    fps, from the job's checked render plan."""
    checked = pipeline.with_features(pipeline.plan("video", job.output, job.template_dir, job.audio_features, job.audio,
                                                   job.audio_encoder, job.options(), job.hubert_model))
    path = scratch / "features.npy"
    write_feature_array(checked.ready_features.rows(), path, "npy")
    return {"frames": checked.frame_count, "fps": checked.fps, "features": str(path)}


def render_whole(pipeline: FrameGenerationPipeline, job: Job, features: str, frames: int) -> int:
    """Render the whole job into its output (written atomically, with its audio); the frame count."""
    options = replace(job.options(), max_frames=frames)
    return pipeline.video(job.output, job.template_dir, job.audio, features, options=options).frames


def render_segment(pipeline: FrameGenerationPipeline, job: Job, features: str, first: int, count: int, segment: Path) -> int:
    """Frames [first, first + count) of the job as a silent H.264 segment (starting with a keyframe)."""
    options = job.options()
    templates = as_templates(job.template_dir, options.use_parsing)
    frames = pipeline.renderer(templates).iter_frames(templates, features, options.start_frame, count, first, blend=options.blend_for("video"))
    with closing(frames):  # on failure the render's threads stop now, ffmpeg is killed by encode_frames
        return encode_frames(frames, segment, options.fps or pipeline.mode.fps, crf=options.crf, preset=options.preset)


class RenderWorker:
    """A farm worker: keeps its loaded pipelines (one per checkpoint and settings) across jobs."""

    def __init__(self, cpus: int, device: str | None) -> None:
        from ...devices import set_cpu_budget, tune_allocator

        set_cpu_budget(cpus)
        tune_allocator()
        import torch

        torch.set_num_threads(cpus)
        self.device = device
        self.template_cache = TemplateCache()  # one for all of this worker's jobs and pipelines
        self._pipelines: dict[tuple, FrameGenerationPipeline] = {}
        self.loads = 0

    def pid(self) -> int:
        """The worker's process id."""
        return os.getpid()

    def _pipeline(self, job: Job) -> FrameGenerationPipeline:
        key = (job.checkpoint, job.mode, job.backend, job.precision, job.onnx, job.batch_size)
        if key not in self._pipelines:
            self._pipelines[key] = load_pipeline(job, self.device, self.template_cache)
            self.loads += 1
        return self._pipelines[key]

    def plan(self, job: Job, scratch: str) -> dict:
        """See `plan`; also how many pipelines this worker has loaded so far."""
        return {**plan(self._pipeline(job), job, Path(scratch)), "loads": self.loads}

    def render(self, job: Job, features: str, first: int, count: int, segment: str | None) -> int:
        """The whole job (no segment), or one segment of it."""
        if segment is None:
            return render_whole(self._pipeline(job), job, features, count)
        return render_segment(self._pipeline(job), job, features, first, count, Path(segment))
