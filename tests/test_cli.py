"""The frame-gen command line: success paths and clean, one-line failures."""

from __future__ import annotations

import subprocess
import sys

import pytest

from frame_generation_pipeline import __version__
from frame_generation_pipeline.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "frame_generation_pipeline", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_version_answers_without_importing_torch():
    code = "import sys; from frame_generation_pipeline.cli import main; main(['--version'])"
    result = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    assert __version__ in result.stdout
    probe = "import sys, frame_generation_pipeline.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_frames_subcommand(checkpoints, features, templates_640, tmp_path):
    result = run_cli("frames", "--checkpoint", checkpoints["ave"], "--template-dir", templates_640,
                     "--audio-features", features["ave"], "--output-dir", tmp_path / "f", "--batch-size", "3")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "f").glob("*.png"))) == 7


@pytest.mark.parametrize(
    "change, message",
    [({"--mode": "wenet"}, "layout of mode 'ave' or 'hubert'"), ({"--mode": "klingon"}, "unknown mode 'klingon'"),
     ({"--start-frame": "5"}, "start_frame 5 is outside the 5 templates"),
     ({"--audio-features": "missing.npy"}, "missing.npy: audio feature file not found")],
)
def test_bad_input_is_one_line_exit_2(checkpoints, features, templates_640, tmp_path, change, message, capsys):
    args = {"--checkpoint": checkpoints["ave"], "--template-dir": templates_640,
            "--audio-features": features["ave"], "--output-dir": tmp_path / "f"}
    args.update(change)
    status = main(["frames", "--quiet", *[str(x) for kv in args.items() for x in kv]])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "f").exists()


def test_demo_renders_a_playable_video_with_audio(tmp_path):
    import av

    result = run_cli("demo", "--quiet", "--output", tmp_path / "demo", "--seconds", "0.6")
    assert result.returncode == 0, result.stderr
    assert "demo video:" in result.stdout
    with av.open(str(tmp_path / "demo" / "demo.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == int((0.6 * 80 + 1 - 16) / 80 * 25) + 2 + 2
