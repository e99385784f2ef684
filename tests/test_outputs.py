"""One output policy, every subcommand: no output is, lies inside or holds an input; a folder output
is replaced only when empty or our own earlier output (its manifest says so). Every row runs the
command line and checks the exit status, the one error line and every file byte for byte.

The refusals come before any model loads, so the world's checkpoints and encoder are deliberately
broken: a row that got past the output check by mistake would fail on them with another message.
Rows on our own earlier output get past the output check and stop at the broken model, which shows
the output was allowed without rendering anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.app.farm import runner
from frame_generation_pipeline.errors import BackendUnavailableError

from .helpers import cli_status, earlier_output

BROKEN = b"PK\x03\x04 not a model"
#: How each kind of output target is refused (or, for our own earlier output, let through).
EQUAL, INSIDE, FOLDER, NUMBERED, OURS = "an input", "inside an input folder", "an input folder", "numbered images", "ours"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Tiny inputs: templates with parsing masks, features, speech, broken model files, a folder of the
    user's numbered frames and earlier outputs of ours."""
    root = tmp_path_factory.mktemp("outputs")
    synthetic.make_templates(root / "tpl", 2, 64, 48, parsing=True)
    np.save(root / "f.npy", synthetic.random_features("ave", 2, seed=0))
    write_speech_like_wav(root / "s.wav", 0.24)  # long enough for one encoder window
    for name in ("ckpt.pth", "enc.pth"):
        (root / name).write_bytes(BROKEN)
    (root / "hub").mkdir()
    (root / "hub" / "config.json").write_text("{}\n")
    (root / "mine").mkdir()  # ffmpeg -i x.mp4 mine/%d.jpg, and a frame named as ours
    for name in ("1.jpg", "2.jpg", "000000.png"):
        (root / "mine" / name).write_bytes(b"\xff\xd8 the user's frame " + name.encode())
    earlier_output(root / "ours", {"000000.png": b"an earlier frame", "000001.png": b"another"})
    (root / "link.mp4").symlink_to(root / "s.wav")
    os.link(root / "s.wav", root / "hard.mp4")
    (root / "frames-link").symlink_to(root / "tpl" / "full_body_img")
    for suffix in (".mp4", ".npy", ".onnx", ".json", ".jsonl"):
        (root / f"old{suffix}").write_bytes(b"an earlier output")
    return root


def _command(world: Path, jobs: Path) -> dict[str, tuple[list, str]]:
    """Per subcommand: its arguments but the output, and the model file it would load first."""
    w = world
    render = ["--checkpoint", w / "ckpt.pth", "--template-dir", w / "tpl", "--audio-features", w / "f.npy"]
    live = ["live", "--checkpoint", w / "ckpt.pth", "--template-dir", w / "tpl", "--audio-encoder", w / "enc.pth",
            "--audio", w / "s.wav"]
    return {
        "video": (["video", *render, "--audio", w / "s.wav"], "ckpt.pth"),
        "frames": (["frames", *render, "--parsing"], "ckpt.pth"),
        "reference": (["reference", *render], "ckpt.pth"),
        "features": (["features", "--hubert-model", w / "hub", "--audio", w / "s.wav"], "hub"),
        "export-onnx": (["export-onnx", "--checkpoint", w / "ckpt.pth"], "ckpt.pth"),
        "live": (live, "enc.pth"),
        "live --frames-dir": ([*live, "--output", w / "new.mp4"], "enc.pth"),
        "live --report": ([*live, "--output", w / "new.mp4"], "enc.pth"),
        "package": (["package", *render], "ckpt.pth"),
        "demo": (["demo", "--seconds", "0.1"], "seconds"),
        "batch": (["batch", jobs], "ray is not started in this test"),
        "batch --report": (["batch", jobs], "ray is not started in this test"),
    }


#: (subcommand, output option, folder output?, what its input file and input folder are, file suffix)
OUTPUTS = [
    ("video", "--output", False, "s.wav", "tpl", ".mp4"),
    ("frames", "--output-dir", True, "f.npy", "tpl", ""),
    ("reference", "--output-dir", True, "f.npy", "tpl", ""),
    ("features", "--output", False, "s.wav", "hub", ".npy"),
    ("export-onnx", "--output", False, "ckpt.pth", None, ".onnx"),
    ("live", "--output", False, "s.wav", "tpl", ".mp4"),
    ("live --frames-dir", "--frames-dir", True, "s.wav", "tpl", ""),
    ("live --report", "--report", False, "s.wav", "tpl", ".json"),
    ("package", "--output", True, "f.npy", "tpl", ""),
    ("demo", "--output", True, None, None, ""),
    ("batch", "the output of job 1", False, "s.wav", "tpl", ".mp4"),
    ("batch --report", "--report", False, "s.wav", "tpl", ".jsonl"),
]


def _rows():
    for command, option, folder, input_file, input_folder, suffix in OUTPUTS:
        inside = f"{input_folder}/{'parsing' if command == 'frames' else 'full_body_img'}" if folder else \
            f"{input_folder}/out{suffix}"
        targets = {EQUAL: input_file, INSIDE: input_folder and inside, FOLDER: input_folder, NUMBERED: "mine",
                   OURS: "ours" if folder else f"old{suffix}"}
        for case, target in targets.items():
            if target is not None:
                yield pytest.param(command, option, folder, case, target, id=f"{command}-{case}")
    # the cases the new user met, each by name
    yield pytest.param("frames", "--output-dir", True, INSIDE, "tpl/full_body_img", id="frames-template-images")
    yield pytest.param("live --frames-dir", "--frames-dir", True, INSIDE, "tpl/full_body_img", id="live-template-images")
    yield pytest.param("batch --report", "--report", False, EQUAL, "JOBS", id="batch-report-over-its-job-file")
    # through links
    yield pytest.param("video", "--output", False, EQUAL, "link.mp4", id="video-symbolic-link-to-the-speech")
    yield pytest.param("live --report", "--report", False, EQUAL, "hard.mp4", id="live-report-hard-link-of-the-speech")
    yield pytest.param("frames", "--output-dir", True, INSIDE, "frames-link", id="frames-symbolic-link-into-the-templates")


def _tree(*roots: Path) -> dict[str, bytes | None]:
    return {str(path): path.read_bytes() if path.is_file() else None for root in roots for path in sorted(root.rglob("*"))}


@pytest.mark.parametrize("command, option, folder, case, target", list(_rows()))
def test_no_output_is_an_input_and_only_our_own_folders_are_replaced(world, tmp_path, capsys, monkeypatch,
                                                                        command, option, folder, case, target):
    def stop(*_args):
        raise BackendUnavailableError("ray is not started in this test")

    monkeypatch.setattr(runner, "_ray", stop)  # batch rows that pass the checks stop before Ray starts
    jobs = tmp_path / "jobs.jsonl"
    path = jobs if target == "JOBS" else world / target
    job = {"checkpoint": str(world / "ckpt.pth"), "template_dir": str(world / "tpl"), "audio": str(world / "s.wav"),
           "audio_features": str(world / "f.npy"), "output": str(path if command == "batch" else world / "new.mp4")}
    jobs.write_text(json.dumps(job) + "\n")
    argv, first_model = _command(world, jobs)[command]
    if command != "batch":
        argv = [*argv, option, path]
    before = _tree(world, tmp_path)

    status = cli_status([argv[0], "--quiet", *argv[1:]])

    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    if case == OURS:  # let through: the error is the broken model's, found after the outputs were checked
        assert first_model in err and option not in err, err
    else:
        expected = {EQUAL: "is the input", INSIDE: "is inside the input", FOLDER: "is the input",
                    NUMBERED: "holds " if folder else "is a folder"}[case]
        assert f"{option} {expected}" in err, err
    assert _tree(world, tmp_path) == before, "every file byte for byte, nothing added or removed"



@pytest.mark.parametrize("case", ["a user's file as the .bin's description", "a report not named .json",
                                  "a batch report not named .json", "a batch job writing a .jpg"])
def test_implied_and_typed_outputs_are_checked_before_anything_runs(world, tmp_path, capsys, case):
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's notes\n")
    jobs = tmp_path / "jobs.jsonl"
    job = {"checkpoint": str(world / "ckpt.pth"), "template_dir": str(world / "tpl"), "audio": str(world / "s.wav"),
           "audio_features": str(world / "f.npy"), "output": str(tmp_path / "new.mp4")}
    if case == "a batch job writing a .jpg":
        job["output"] = str(tmp_path / "holiday.jpg")
    jobs.write_text(json.dumps(job) + "\n")
    (tmp_path / "my.bin.json").write_text('{"a note": "of the user"}\n')
    argv, expected = {
        "a user's file as the .bin's description": (
            ["features", "--audio-encoder", world / "enc.pth", "--audio", world / "s.wav", "--output", tmp_path / "my.bin"],
            "is not a feature description this command wrote"),
        "a report not named .json": (_command(world, jobs)["live"][0] + ["--output", tmp_path / "l.mp4", "--report", notes],
                                     "--report is written as JSON"),
        "a batch report not named .json": (["batch", jobs, "--report", notes], "--report is written as JSON"),
        "a batch job writing a .jpg": (["batch", jobs], "expected a video file"),
    }[case]
    before = _tree(world, tmp_path)

    status = cli_status([argv[0], "--quiet", *argv[1:]])

    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and expected in err, err
    assert _tree(world, tmp_path) == before
