"""The render farm: jobs on a local Ray instance inside a loopback-only network namespace (failures
reported, a killed worker's job retried, a chunked job equal to a serial render), and job files."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.app.farm import runner
from frame_generation_pipeline.app.farm.jobs import JOB_KEYS, Job, job_from
from frame_generation_pipeline.app.farm.runner import _message, chunks
from frame_generation_pipeline.app.farm.worker import render_segment, render_whole
from frame_generation_pipeline.contract import get_mode
from frame_generation_pipeline.errors import CacheError, ConfigurationError, TemplateError
from frame_generation_pipeline.options import RenderOptions
from frame_generation_pipeline.render.blend import FEATHER, NO_BLEND, Blend

from .helpers import cli_status
from .test_serve import in_namespace
from .test_video import _children


@pytest.fixture(scope="module")
def farmed(tmp_path_factory, checkpoints, exports):
    root = tmp_path_factory.mktemp("farm")
    np.save(root / "features.npy", synthetic.random_features("ave", 40, seed=9))
    args = {"checkpoint": str(checkpoints["ave"]), "onnx": str(exports["ave"]),
            "templates": str(synthetic.make_templates(root / "tpl", 6, 200, 160, parsing=False)),
            "clip": str(write_speech_like_wav(root / "clip.wav", 1.6)), "features": str(root / "features.npy"),
            "out": str(root / "out")}
    (root / "out").mkdir()
    return in_namespace("farm_scenario.py", "all", args, timeout=600)


def test_nothing_listens_beyond_loopback(farmed):
    assert farmed["listening"] and set(farmed["listening"]) <= {"127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"}


def test_three_jobs_one_bad_two_ok_and_a_report_line_each(farmed):
    rows = {row["output"].rsplit("/", 1)[1]: row for row in farmed["three"]}
    assert rows["a.mp4"]["status"] == rows["c.mp4"]["status"] == "ok"
    assert rows["a.mp4"]["frames"] == 6 and rows["c.mp4"]["frames"] == 8 and farmed["frames_a"] == 6
    assert rows["bad.mp4"]["status"] == "failed" and rows["bad.mp4"]["error"].endswith("no-such-folder: template folder not found")
    assert len(farmed["three"]) == 3 and len(farmed["chunked"]) == 1, "a report row per job of the batch"
    batch = farmed["three"] + farmed["chunked"]  # the chunked job ran in the same batch
    assert sorted(row["output"] for row in farmed["report_lines"]) == sorted(row["output"] for row in batch)
    assert all(set(row) >= {"output", "status", "frames", "seconds", "error"} for row in farmed["report_lines"])


def test_a_worker_killed_mid_job_is_retried_to_ok(farmed):
    assert farmed.get("killed"), "the worker was killed while rendering"
    [row] = farmed["killed_run"]
    assert row["status"] == "ok" and row["attempts"] >= 2 and row["frames"] == 20 == farmed["frames_retried"]


def test_a_chunked_job_equals_the_serial_render_frame_for_frame(farmed):
    [row] = farmed["chunked"]
    assert row["status"] == "ok" and row["frames"] == 30
    assert farmed["chunked_frames"] == [30, 30, 30], "frames of the farm's render, the serial one, the plan"
    assert farmed["chunked_differences"] == [0] * 30, f"largest difference to the serial render, per frame: {farmed['chunked_differences']}"
    assert abs(farmed["chunked_audio_seconds"] - 30 / 25) <= 1 / 25


def test_outputs_are_atomic_no_temporary_is_left(farmed):
    assert farmed["left_in_out"] == ["a.mp4", "c.mp4", "long.mp4", "report.jsonl", "retried.mp4", "serial-scratch",
                                     "serial.mp4"]


@pytest.mark.parametrize(
    "line, message",
    [('{"checkpoint": "c.pth"', "line 2: not JSON"),
     ('{"checkpoint": "c", "template_dir": "t", "audio": "a", "output": "o.mp4", "audio_features": "f", "colour": 1}',
      "line 2: unknown key 'colour'"),
     ('{"checkpoint": "c", "template_dir": "t", "audio": "a", "output": "o.mp4"}', "line 2: give audio_features, or audio_encoder"),
     ('{"checkpoint": "c", "template_dir": "t", "audio": "a", "output": "o.mp4", "audio_features": "f", "crf": "20"}',
      "line 2: crf must be an integer")],
)
def test_a_bad_job_line_is_refused_before_anything_runs(tmp_path, capsys, line, message):
    good = '{"checkpoint": "c", "template_dir": "t", "audio": "a", "output": "first.mp4", "audio_features": "f"}'
    (tmp_path / "jobs.jsonl").write_text(good + "\n" + line + "\n")
    assert cli_status(["batch", tmp_path / "jobs.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'jobs.jsonl'}: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.jsonl"]


def test_every_jobs_inputs_are_checked_as_video_checks_them_before_the_cluster_starts(tmp_path, features, speech, capsys):
    templates = synthetic.make_templates(tmp_path / "tpl", 2, 200, 160, parsing=False)
    (tmp_path / "c.pth").write_bytes(b"PK\x03\x04 weights")  # begins as a checkpoint does: the checks read no more
    job = {"checkpoint": str(tmp_path / "c.pth"), "template_dir": str(templates), "audio": str(speech["long"]),
           "audio_features": str(features["ave"])}
    lines = [{**job, "output": str(tmp_path / "first.mp4")},
             {**job, "output": str(tmp_path / "second.mp4"), "audio": str(tmp_path / "gone.wav")}]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli_status(["batch", tmp_path / "jobs.jsonl"]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'jobs.jsonl'}: line 2: {tmp_path / 'gone.wav'}: "
                                       "audio file not found\n")
    lines[1] = {**lines[0], "output": str(tmp_path / "second.mp4"), "start_frame": 2}
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli_status(["batch", tmp_path / "jobs.jsonl"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'jobs.jsonl'}: line 2: --start-frame 2 is outside")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pth", "jobs.jsonl", "tpl"], "nothing ran"


def test_batch_help_and_the_docs_list_every_key_a_job_may_have(capsys):
    assert cli_status(["batch", "--help"]) == 0
    listed = capsys.readouterr().out.split("without dashes:", 1)[1].split(".\n", 1)[0]
    assert [key.strip() for key in listed.split(",")] == list(JOB_KEYS)
    assert set(JOB_KEYS) == {field.name for field in fields(Job)} - {"blend"} | set(NO_BLEND.settings())
    docs = (Path(__file__).resolve().parents[1] / "docs" / "farm.md").read_text()
    assert [key for key in JOB_KEYS if f"`{key}`" not in docs] == []


def test_jobs_are_cut_in_chunks_that_cover_every_frame_once():
    assert chunks(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert chunks(8, 4) == [(0, 4), (4, 4)] and chunks(7, None) == [(0, 7)] and chunks(3, 5) == [(0, 3)]


def test_a_failed_jobs_reason_is_one_line():
    assert _message(TemplateError("tpl", "template folder not found")) == "tpl: template folder not found"
    assert _message(RuntimeError("boom\n  at line 3")) == "RuntimeError: boom"
    wrapped = RuntimeError("the task failed")
    wrapped.cause = KeyError()  # as Ray's task errors carry the worker's exception
    assert _message(wrapped) == "KeyError"


_BASE = {"checkpoint": "c.pth", "template_dir": "tpl", "audio": "a.wav", "output": "o.mp4", "audio_features": "f.npy"}


def test_a_job_renders_with_its_options_and_the_render_defaults():
    assert Job(**_BASE).options() == RenderOptions(blend=FEATHER), "a job is a video: feathered unless told"
    job = job_from({**_BASE, "start_frame": 1, "parsing": True, "fps": 20, "crf": 30, "preset": "ultrafast",
                    "max_frames": 5}, "job 1")
    asked = []
    pipeline = SimpleNamespace(video=lambda *args, options: asked.append((args, options)) or SimpleNamespace(frames=3))
    assert render_whole(pipeline, job, "planned.npy", 3) == 3
    assert asked == [(("o.mp4", "tpl", "a.wav", "planned.npy"),
                      RenderOptions(start_frame=1, max_frames=3, use_parsing=True, fps=20, crf=30, preset="ultrafast",
                                    blend=FEATHER))]


def test_a_jobs_blend_keys_are_one_blend_and_go_back_to_json_as_they_came():
    job = job_from({**_BASE, "blend": "feather", "blend_width": 8, "color_match": True}, "job 1")
    assert job.blend == Blend("feather", 8, color_match=True) == job.options().blend
    assert {key: job.as_dict()[key] for key in ("blend", "blend_width", "color_match")} == {
        "blend": "feather", "blend_width": 8, "color_match": True}
    assert job_from(job, "again") == job and job_from(_BASE, "plain").blend == FEATHER
    assert job_from({**_BASE, "blend": "none"}, "upstream's").blend == NO_BLEND
    assert job_from({**_BASE, "color_match": True}, "matched").blend == Blend(color_match=True)
    with pytest.raises(ConfigurationError, match="job 2: color_match needs blend 'feather'"):
        job_from({**_BASE, "blend": "none", "color_match": True}, "job 2")


class _Frames:
    """Stands in for a pipeline's renderer of the job's templates: flat frames, optionally failing after a few; records its calls."""

    def __init__(self, fail_after=None):
        self.calls, self.closed, self.fail_after = [], False, fail_after

    def iter_frames(self, templates, features, start_frame, count, first, blend):
        self.calls.append((start_frame, count, first, blend.mode))
        try:
            for i in range(count):
                if i == self.fail_after:
                    raise KeyboardInterrupt
                yield np.full((48, 64, 3), 60 * (i + 1), np.uint8)
        finally:
            self.closed = True


def test_a_segment_is_encoded_with_the_jobs_settings_and_a_failure_ends_ffmpeg(tmp_path):
    folder = synthetic.make_templates(tmp_path / "tpl", 3, 64, 48, parsing=False)
    job = job_from({**_BASE, "template_dir": str(folder), "start_frame": 1, "fps": 20, "preset": "ultrafast"}, "job 1")
    frames = _Frames()
    pipeline = SimpleNamespace(renderer=lambda templates: frames, mode=get_mode("ave"))
    assert render_segment(pipeline, job, "f.npy", 4, 3, tmp_path / "piece.mp4") == 3
    assert frames.calls == [(1, 3, 4, "feather")] and frames.closed
    with av.open(str(tmp_path / "piece.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 20 and not container.streams.audio
        assert [round(f.to_ndarray(format="bgr24").mean() / 60) for f in container.decode(stream)] == [1, 2, 3]
    broken = _Frames(fail_after=2)
    failing = SimpleNamespace(renderer=lambda templates: broken, mode=get_mode("ave"))
    with pytest.raises(KeyboardInterrupt):
        render_segment(failing, job, "f.npy", 0, 3, tmp_path / "broken.mp4")
    assert broken.closed and _children() == [], "ffmpeg and the render must stop with the segment"


class _InProcessRay:
    """Stands in for Ray: one actor running the farm's tasks in this process, in the order submitted;
    a task's exception comes back wrapped as Ray wraps it (`cause`)."""

    class exceptions:  # noqa: N801 (as ray.exceptions)
        class RayError(Exception):
            pass

        class RayActorError(RayError):
            pass

    def __init__(self, worker):
        call = lambda method: SimpleNamespace(remote=lambda *args: (method, args))  # noqa: E731
        self.actor = SimpleNamespace(plan=call(worker.plan), render=call(worker.render))

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2}

    def remote(self, **options):
        return lambda cls: SimpleNamespace(remote=lambda *args: self.actor)

    def wait(self, references, num_returns):
        return references[:num_returns], references[num_returns:]

    def get(self, reference):
        method, args = reference
        try:
            return method(*args)
        except Exception as exc:
            wrapped = RuntimeError("the task failed")
            wrapped.cause = exc
            raise wrapped from None

    def kill(self, actor):
        pass


class _FlakyWorker:
    """Plans fail as the job's template folder name says: `flaky` once with an OSError, `cache` once with
    a broken cache entry, `broken` always with an OSError, `missing` with the user's error; renders give
    the job's max_frames."""

    def __init__(self):
        self.plans = []

    def plan(self, job, scratch):
        name = Path(job.template_dir).name
        self.plans.append(name)
        if name == "missing":
            raise TemplateError(job.template_dir, "template folder not found")
        if name == "broken" or (name == "flaky" and self.plans.count(name) == 1):
            raise OSError(5, "Input/output error")
        if name == "cache" and self.plans.count(name) == 1:  # as OpenVINO failing on a blob another process broke
            raise CacheError("x-ave-opset17.onnx: OpenVINO cannot compile it (Exception from src/inference/src/cpp/core.cpp:132:)")
        return {"frames": job.max_frames, "fps": 25.0, "features": "f.npy"}

    def render(self, job, features, first, count, segment):
        return count


def test_a_job_failing_for_another_reason_than_its_inputs_is_tried_again_and_an_input_error_is_not(tmp_path, monkeypatch):
    worker = _FlakyWorker()
    monkeypatch.setattr(runner, "_ray", lambda: _InProcessRay(worker))
    jobs = [{**_BASE, "template_dir": name, "output": str(tmp_path / f"{name}.mp4"), "max_frames": 3}
            for name in ("flaky", "cache", "missing", "broken")]
    rows = {Path(row["output"]).stem: row for row in runner.render_batch(jobs, retries=2)}
    assert (rows["flaky"]["status"], rows["flaky"]["attempts"], rows["flaky"]["frames"]) == ("ok", 2, 3)
    assert (rows["cache"]["status"], rows["cache"]["attempts"]) == ("ok", 2)
    assert (rows["missing"]["status"], rows["missing"]["attempts"]) == ("failed", 1), "the user's error is final"
    assert rows["missing"]["error"] == "missing: template folder not found"
    assert (rows["broken"]["status"], rows["broken"]["attempts"]) == ("failed", 3)
    assert rows["broken"]["error"] == "it failed 3 times (OSError: [Errno 5] Input/output error)"
    assert sorted(worker.plans) == sorted(["flaky"] * 2 + ["cache"] * 2 + ["missing"] + ["broken"] * 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no scratch folder is left"
