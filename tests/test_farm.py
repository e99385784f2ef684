"""The render farm: jobs on a local Ray instance inside a loopback-only network namespace (failures
reported, a killed worker's job retried, a chunked job equal to a serial render), and job files."""

from __future__ import annotations

import numpy as np
import pytest

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav

from .helpers import cli_status
from .test_serve import in_namespace


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
    assert sorted(row["output"] for row in farmed["report_lines"]) == sorted(row["output"] for row in farmed["three"])
    assert all(set(row) >= {"output", "status", "frames", "seconds", "error"} for row in farmed["report_lines"])


def test_a_worker_killed_mid_job_is_retried_to_ok(farmed):
    assert farmed.get("killed"), "the worker was killed while rendering"
    [row] = farmed["killed_run"]
    assert row["status"] == "ok" and row["attempts"] >= 2 and row["frames"] == 30 == farmed["frames_retried"]


def test_a_chunked_job_equals_the_serial_render_frame_for_frame(farmed):
    [row] = farmed["chunked"]
    assert row["status"] == "ok" and row["frames"] == 40
    assert farmed["chunked_frames"] == [40, 40, 40] and farmed["chunked_equal"]
    assert abs(farmed["chunked_audio_seconds"] - 40 / 25) <= 1 / 25


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
