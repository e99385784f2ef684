"""The frame-gen command line: success paths, what it says, --help, and clean one-line failures."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import cv2
import pytest

from frame_generation_pipeline import __version__
from frame_generation_pipeline.app.cli import build_parser, main
from frame_generation_pipeline.files import MANIFEST

from .helpers import cli_status

SUBCOMMANDS = ("video", "frames", "features", "export-onnx", "reference", "verify-reference", "say", "demo", "prepare", "live", "serve",
               "batch", "compare")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "frame_generation_pipeline", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_version_answers_without_importing_torch():
    code = "import sys; from frame_generation_pipeline.app.cli import main; main(['--version'])"
    result = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    assert __version__ in result.stdout
    probe = "import sys, frame_generation_pipeline.app.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_frames_says_what_it_does_and_sums_up(checkpoints, features, templates_640, exports, tmp_path, capsys):
    status = main(["frames", "--checkpoint", str(checkpoints["ave"]), "--template-dir", str(templates_640),
                   "--audio-features", str(features["ave"]), "--output-dir", str(tmp_path / "f"), "--batch-size", "3"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert len(list((tmp_path / "f").glob("*.png"))) == 7
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("loading ") and any(line.startswith("backend onnxruntime") for line in lines)
    assert re.fullmatch(rf"wrote {re.escape(str(tmp_path / 'f'))}: 7 frames \(0\.28 s at 25 fps\) with onnxruntime fp32 on cpu, "
                        r"batch 3, rendered in \d+\.\d s \(\d+\.\d frames/s\); "
                        r"\d+\.\d s for the whole command \(with loading, features and checks\)", lines[-1]), lines[-1]
    assert captured.out == ""


def test_a_command_run_in_process_leaves_the_library_logger_as_it_found_it(tmp_path, capsys):
    library = logging.getLogger("frame_generation_pipeline")
    before = library.handlers[:], library.level, library.propagate
    assert main(["features", "--audio-encoder", str(tmp_path / "none.pth"), "--audio", str(tmp_path / "none.wav"),
                 "--output", str(tmp_path / "f.npy")]) == 2
    assert "error:" in capsys.readouterr().err
    assert (library.handlers[:], library.level, library.propagate) == before, "no handler left on a stream that closes"


def test_quiet_means_quiet(checkpoints, features, templates_640, tmp_path, capsys):
    assert main(["frames", "-q", "--checkpoint", str(checkpoints["ave"]), "--template-dir", str(templates_640),
                 "--audio-features", str(features["ave"]), "--output-dir", str(tmp_path / "f"), "--max-frames", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_frames_into_a_folder_of_an_earlier_longer_run_leave_exactly_the_new_frames(checkpoints, features, templates_640, tmp_path):
    out = tmp_path / "f"
    args = ["frames", "--quiet", "--checkpoint", str(checkpoints["ave"]), "--template-dir", str(templates_640),
            "--audio-features", str(features["ave"]), "--output-dir", str(out), "--max-frames"]
    assert main([*args, "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "000000.png", "000001.png"]
    assert main([*args, "1"]) == 0  # our own earlier output, as its manifest shows: replaced
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "000000.png"]
    assert (out / "000000.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / MANIFEST).read_text())["files"] == {"000000.png": (out / "000000.png").stat().st_size}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"], "no temporary or old folder left"
    (out / "notes.txt").write_text("mine")
    assert main([*args, "1"]) == 2
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 3


@pytest.mark.parametrize(
    "change, message",
    [({"--mode": "wenet", "--audio-features": "wenet"}, "layout of mode 'ave' or 'hubert'"),
     ({"--mode": "klingon"}, "argument --mode: invalid choice: 'klingon'"),
     ({"--start-frame": "5"}, "--start-frame 5 is outside the 5 templates"),
     ({"--audio-features": "missing.npy"}, "missing.npy: audio feature file not found")],
)
def test_bad_input_is_one_line_exit_2(checkpoints, features, templates_640, tmp_path, change, message, capsys):
    args = {"--checkpoint": checkpoints["ave"], "--template-dir": templates_640,
            "--audio-features": features["ave"], "--output-dir": tmp_path / "f"}
    args.update(change)
    if args["--audio-features"] in features:
        args["--audio-features"] = features[args["--audio-features"]]
    status = cli_status(["frames", "--quiet", *[x for kv in args.items() for x in kv]])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "f").exists()


def test_help_lists_choices_and_shows_each_default_once(capsys):
    parser = build_parser()
    for command in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "example:" in text and "default: None" not in text, command
        assert not re.search(r"\(default: [^)]*\)[^\n]*\(default:", text), command
        if command in ("video", "frames", "reference"):
            flat = " ".join(text.split())
            for choices in ("{ave,hubert,wenet}", "{torch,onnxruntime,openvino,auto}", "{auto,fp32,fp16,bf16}"):
                assert choices in flat, (command, choices)
            assert re.search(r"--checkpoint CHECKPOINT\s+SyncTalk_2D 328 checkpoint \(\.pth\)\n", text), "no default for a required flag"
    with pytest.raises(SystemExit):
        parser.parse_args(["video", "--help"])
    assert "{ultrafast,superfast,veryfast" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["reference", "--help"])
    assert "No video is written" in capsys.readouterr().out


def test_help_lists_the_subcommands_in_order_and_every_mode_choice(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    listed = re.findall(r"^    (\S+)", capsys.readouterr().out, flags=re.MULTILINE)
    assert listed == ["video", "frames", "reference", "features", "export-onnx", "verify-reference", "say", "demo", "prepare", "live",
                      "serve", "batch", "package", "verify-package", "compare", "cache"]
    for command in ("export-onnx", "package", "live", "serve"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "--mode {ave,hubert,wenet}" in capsys.readouterr().out, command


def test_demo_renders_a_playable_video_with_audio(tmp_path):
    import av

    result = run_cli("demo", "--output", tmp_path / "demo", "--seconds", "0.6")
    assert result.returncode == 0, result.stderr
    video_line, sheet_line, inputs_line = result.stdout.strip().splitlines()
    assert video_line == f"demo video: {tmp_path / 'demo' / 'demo.mp4'}"
    assert sheet_line == f"contact sheet: {tmp_path / 'demo' / 'contact_sheet.png'}"
    assert inputs_line.startswith("its inputs (avatar_ave.pth, template/, audio_visual_encoder.pth, speech.wav): "
                                  f"{tmp_path / 'demo' / 'inputs'};")
    assert all((tmp_path / "demo" / "inputs" / name).exists()
               for name in ("avatar_ave.pth", "template", "audio_visual_encoder.pth", "speech.wav"))
    assert result.stderr.strip().splitlines()[-1].startswith(f"wrote {tmp_path / 'demo' / 'demo.mp4'}: 14 frames")
    with av.open(str(tmp_path / "demo" / "demo.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == int((0.6 * 80 + 1 - 16) / 80 * 25) + 2 + 2 == 14
    sheet = cv2.imread(str(tmp_path / "demo" / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > sheet.shape[0] > 300
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [MANIFEST, "contact_sheet.png", "demo.mp4", "inputs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_reference_loads_only_the_exact_backend(checkpoints, features, templates_640, tmp_path, capsys):
    assert main(["reference", "--checkpoint", str(checkpoints["ave"]), "--template-dir", str(templates_640),
                 "--audio-features", str(features["ave"]), "--samples", "1", "--max-frames", "2",
                 "--output-dir", str(tmp_path / "bundle")]) == 0
    err = capsys.readouterr().err
    assert "backend torch" in err and "onnx" not in err, err


def test_a_closed_output_pipe_ends_a_command_quietly(tmp_path, monkeypatch, capsys):
    import os

    monkeypatch.setenv("FRAME_GEN_CACHE_DIR", str(tmp_path))
    read, write = os.pipe()
    os.close(read)  # `frame-gen cache | head -1`: the reader has gone
    with open(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["cache"]) == 141
        monkeypatch.undo()
    assert capsys.readouterr().err == ""
