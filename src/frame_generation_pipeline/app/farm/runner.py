"""The farm's driver: jobs to a pool of Ray actors (one loaded model per worker and checkpoint),
long jobs split in chunks and joined by stream copy, retries when a worker dies or a job fails for a
reason other than its inputs, a report line per job.

Ray Core actors rather than Ray Data: a job list is a handful of heavyweight items, each a file in
and a file out, with per-job failures, retries and joins to report; an actor keeps its models
loaded between jobs, which is what map_batches' actor pools do too, without the dataset layer.
Paths in jobs are read and written by the workers: a shared filesystem is assumed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ...devices import usable_cpus
from ...errors import BackendUnavailableError, CacheError, FrameGenerationError, first_line, install_hint
from ...files import atomic_file, check_output_file
from ...outputs.video import join_segments
from .jobs import Job, check_outputs, job_from
from .worker import RenderWorker

logger = logging.getLogger(__name__)


@dataclass
class JobState:
    """Where one job is: planned or not, its chunks, attempts, and its scratch folder."""

    number: int
    job: Job
    scratch: Path
    started: float
    frames: int = 0
    fps: float = 25.0
    features: str = ""
    chunks: list[tuple[int, int]] = field(default_factory=list)
    done: dict[int, int] = field(default_factory=dict)
    attempts: int = 0
    finished: bool = False


@dataclass(frozen=True)
class PlanTask:
    """Plan a job on a worker: its features written to its scratch folder, its frame count."""

    state: JobState


@dataclass(frozen=True)
class RenderTask:
    """Render frames [first, first + count) of a planned job: the whole job, or one chunk of it."""

    state: JobState
    first: int
    count: int


Task = PlanTask | RenderTask


def chunks(frames: int, size: int | None) -> list[tuple[int, int]]:
    """(first, count) of each piece of a job of `frames` frames cut in pieces of `size` (None: one piece)."""
    size = size or frames
    return [(first, min(size, frames - first)) for first in range(0, frames, size)]


def _ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError(f"batch needs ray: {install_hint('farm')}") from None
    return ray


def retryable(exc: BaseException) -> bool:
    """True where a job failed for a reason other than its inputs (an OSError, a backend's failure, a
    cache entry another process left broken): trying again may succeed. The package's errors about
    what the user gave (a missing file, a bad option) are final."""
    cause = getattr(exc, "cause", None) or exc
    return isinstance(cause, CacheError) or not isinstance(cause, FrameGenerationError)


def _message(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    return str(cause) if isinstance(cause, FrameGenerationError) else first_line(cause, with_type=True)


class Farm:
    """One run of a job list on a Ray cluster (a local one when no address is given)."""

    def __init__(self, jobs: Sequence[Job | dict], workers: int | None = None, ray_address: str | None = None,
                 gpus_per_worker: float = 0.0, report: str | os.PathLike[str] | None = None,
                 chunk_frames: int | None = None, retries: int = 2, show_progress: bool = False) -> None:
        self.jobs = check_outputs([job_from(job, f"job {n}") for n, job in enumerate(jobs, start=1)], "the job list", report)
        self.ray = _ray()
        self.ray_address, self.gpus, self.chunk_frames, self.retries = ray_address, gpus_per_worker, chunk_frames, retries
        self.workers = workers
        self.report_path = Path(report) if report is not None else None
        self.report_lines: Path | None = None  # the report's temporary while the batch runs
        self.rows: list[dict] = []
        self.show_progress = show_progress

    def run(self) -> list[dict]:
        """Render every job; return the report rows (one per job, in the order they finished)."""
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here and self.ray_address is None:  # a local instance, on loopback only
            ray.init(num_cpus=usable_cpus(), include_dashboard=False, _node_ip_address="127.0.0.1",
                     configure_logging=False, log_to_driver=False)
        elif started_here:
            ray.init(address=self.ray_address, configure_logging=False, log_to_driver=False)
        states: list[JobState] = []
        try:
            with contextlib.ExitStack() as stack:
                if self.report_path is not None:  # appended to as jobs finish, moved into place at the end
                    self.report_lines = stack.enter_context(atomic_file(self.report_path))
                self._start_actors()
                states = [JobState(n, job, self._scratch(job), time.perf_counter()) for n, job in enumerate(self.jobs)]
                self._schedule(states)
        except BaseException:
            for state in states:
                if not state.finished:
                    self._clean(state)
            raise
        finally:
            for actor in getattr(self, "actors", []):
                ray.kill(actor)
            if started_here:
                ray.shutdown()
        return self.rows

    def _start_actors(self) -> None:
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        count = self.workers or (max(1, int(gpus // self.gpus)) if self.gpus else max(1, cpus // 2))
        per_worker = max(1, cpus // count)
        actor = self.ray.remote(num_cpus=per_worker, num_gpus=self.gpus, max_restarts=-1, max_task_retries=0)(RenderWorker)
        self.actors = [actor.remote(per_worker, "cuda" if self.gpus else "cpu") for _ in range(count)]
        logger.info("farm: %d workers of %d CPU(s)%s", count, per_worker, f" and {self.gpus:g} GPU(s)" if self.gpus else "")

    @staticmethod
    def _scratch(job: Job) -> Path:
        output = Path(job.output)
        return Path(tempfile.mkdtemp(prefix=f".{output.stem}.", suffix=".farm", dir=check_output_file(output)))

    def _schedule(self, states: list[JobState]) -> None:
        tasks: deque[Task] = deque(PlanTask(state) for state in states)
        free = list(self.actors)
        running: dict = {}
        bar = tqdm(total=0, unit="frame", disable=None if self.show_progress else True, dynamic_ncols=True)
        try:
            while tasks or running:
                while tasks and free:
                    task = tasks.popleft()
                    if task.state.finished:
                        continue
                    actor = free.pop()
                    running[self._submit(actor, task)] = (task, actor)
                ready, _ = self.ray.wait(list(running), num_returns=1)
                task, actor = running.pop(ready[0])
                free.append(actor)
                self._collect(task, ready[0], actor, tasks, bar)
        finally:
            bar.close()

    def _submit(self, actor, task: Task):
        state = task.state
        if isinstance(task, PlanTask):
            return actor.plan.remote(state.job, str(state.scratch))
        segment = None if len(state.chunks) == 1 else str(self._segment(state, task.first))
        return actor.render.remote(state.job, state.features, task.first, task.count, segment)

    def _collect(self, task: Task, reference, actor, tasks: deque[Task], bar: tqdm) -> None:
        """Take a task's outcome: its worker died (a retry), it failed (tried again, or the job is reported),
        or the job goes on; a piece of a job already reported as failed is dropped."""
        if task.state.finished:
            return
        try:
            result = self.ray.get(reference)
        except self.ray.exceptions.RayActorError as exc:
            self._retry(task, actor, exc, tasks)
            return
        except Exception as exc:  # the job's own error: its inputs' is final, another is tried again
            if retryable(exc):
                self._retry(task, None, exc, tasks)
            else:
                self._finish(task.state, "failed", _message(exc))
            return
        if isinstance(task, PlanTask):
            tasks.extend(self._planned(task.state, result))
            bar.total += task.state.frames
            bar.refresh()
        else:
            bar.update(result)
            self._rendered(task, result)

    def _planned(self, state: JobState, plan: dict) -> list[RenderTask]:
        """Keep a job's plan; the tasks that render it, one per chunk."""
        state.frames, state.fps, state.features = plan["frames"], plan["fps"], plan["features"]
        state.chunks = chunks(state.frames, self.chunk_frames)
        return [RenderTask(state, first, count) for first, count in state.chunks]

    def _rendered(self, task: RenderTask, frames: int) -> None:
        """Count a rendered piece of a job; once all its pieces are there, complete the job."""
        task.state.done[task.first] = frames
        if len(task.state.done) == len(task.state.chunks):
            self._complete(task.state)

    def _retry(self, task: Task, actor, exc: BaseException, tasks: deque[Task]) -> None:
        """`task` failed for a reason other than its inputs (`actor`: the worker that died running it, or
        None where the task raised): queue it again (once the worker is back), or fail the job after
        `retries` attempts."""
        state = task.state
        state.attempts += 1
        what = "a worker died" if actor is not None else "it failed"
        if state.attempts > self.retries:
            self._finish(state, "failed", f"{what} {state.attempts} times ({_message(exc)})", tries=state.attempts)
            return
        logger.warning("farm: %s rendering %s (%s); trying again (%d of %d)", what, state.job.output, _message(exc),
                       state.attempts, self.retries)
        if actor is not None:
            with contextlib.suppress(self.ray.exceptions.RayError):
                self.ray.get(actor.pid.remote(), timeout=120)  # Ray restarts it; wait until it answers
        tasks.appendleft(task)

    def _complete(self, state: JobState) -> None:
        """Every piece of the job is rendered: join the pieces (when there are several) and report it."""
        try:
            if len(state.chunks) > 1:
                self._join(state)
            self._finish(state, "ok")
        except FrameGenerationError as exc:
            self._finish(state, "failed", str(exc))

    @staticmethod
    def _segment(state: JobState, first: int) -> Path:
        return state.scratch / f"{first:09d}.mp4"

    def _join(self, state: JobState) -> None:
        segments = [self._segment(state, first) for first, _ in state.chunks]
        with atomic_file(state.job.output) as temporary:
            join_segments(segments, Path(state.job.audio), temporary, state.frames / state.fps)

    def _finish(self, state: JobState, status: str, error: str | None = None, tries: int | None = None) -> None:
        """Report the job (tried `tries` times; by default once more than it failed and was tried again)."""
        state.finished = True
        self._clean(state)
        self._report({"output": state.job.output, "status": status,
                      "frames": sum(state.done.values()) if status == "ok" else 0,
                      "seconds": round(time.perf_counter() - state.started, 3), "error": error,
                      "attempts": state.attempts + 1 if tries is None else tries})

    def _report(self, row: dict) -> None:
        """Keep a job's report row, append it to the report file, and log it."""
        self.rows.append(row)
        if self.report_lines is not None:
            with open(self.report_lines, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        logger.log(logging.WARNING if row["error"] else logging.INFO, "farm: %s %s%s", row["output"], row["status"],
                   f": {row['error']}" if row["error"] else "")

    @staticmethod
    def _clean(state: JobState) -> None:
        """Remove the job's scratch folder and any temporary a killed worker left beside its output."""
        shutil.rmtree(state.scratch, ignore_errors=True)
        output = Path(state.job.output)
        for leftover in output.parent.glob(f".{output.stem}.*.partial{output.suffix}"):
            leftover.unlink(missing_ok=True)


def render_batch(jobs: Sequence[Job | dict], **options: Any) -> list[dict]:
    """Render job dicts (or Jobs) on Ray; return the report rows. Options as for Farm."""
    return Farm(jobs, **options).run()
