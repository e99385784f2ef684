"""Every failure a user can cause: exit 2 (128 + N for signal N), one `error:` line naming the
culprit, no traceback, no output or temporary file left, an existing output untouched; and the
surprises that become one-line warnings."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from frame_generation_pipeline.app.cli import main
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.files import MANIFEST

from .helpers import cli_status, earlier_output

OLD = b"a good video from yesterday"


@pytest.fixture(scope="module")
def good(tmp_path_factory, checkpoints):
    root = tmp_path_factory.mktemp("good")
    synthetic.make_templates(root / "tpl", 4, 200, 160, parsing=True)
    np.save(root / "f.npy", synthetic.random_features("ave", 3, seed=0))
    write_speech_like_wav(root / "s.wav", 3 / 25)  # as long as the 3 feature rows
    shutil.copy(checkpoints["ave"], root / "ave.pth")
    shutil.copy(checkpoints["wenet"], root / "wenet.pth")
    return root


def _link_checkpoints(source, target):
    """Copy a file, but hard-link the (large, never edited in place) checkpoints."""
    if source.endswith(".pth"):
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def _rewrite(path, data):
    """Replace a file by new content without touching other links to it."""
    path.unlink()
    path.write_bytes(data)


def _lms(path, edit):
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")


def _resize(path):
    import cv2

    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (100, 80)))


def _set_line(index, text):
    def edit(lines):
        lines[index] = text
    return edit


CASES = {
    "missing template folder": (lambda d: shutil.rmtree(d / "tpl"), {}, "tpl: template folder not found"),
    "a file as template folder": (None, {"--template-dir": "f.npy"}, "f.npy: is a file, not a folder"),
    "a file as landmarks folder": (lambda d: (shutil.rmtree(d / "tpl/landmarks"), (d / "tpl/landmarks").write_text("")), {},
                                   "landmarks: is a file, not a folder"),
    "missing landmarks folder": (lambda d: shutil.rmtree(d / "tpl/landmarks"), {}, "landmarks: template folder not found"),
    "missing lms": (lambda d: (d / "tpl/landmarks/2.lms").unlink(), {}, "2.lms: template 2 of 0..3 is missing"),
    "missing jpg": (lambda d: (d / "tpl/full_body_img/3.jpg").rename(d / "tpl/full_body_img/9.jpg"), {}, "3.jpg: template 3"),
    "short lms": (lambda d: _lms(d / "tpl/landmarks/2.lms", lambda rows: rows.__delitem__(slice(40, None))), {}, "2.lms: has 40 landmarks"),
    "non-numeric lms": (lambda d: _lms(d / "tpl/landmarks/1.lms", _set_line(3, "12.5 abc")), {}, "1.lms: line 4: non-numeric"),
    "box outside image": (lambda d: _lms(d / "tpl/landmarks/1.lms", _set_line(52, "90.0 700.0")), {}, "1.lms: crop box"),
    "box width zero": (lambda d: _lms(d / "tpl/landmarks/2.lms", _set_line(31, "10.0 50.0")), {}, "2.lms: crop box width is"),
    "corrupt first jpeg": (lambda d: (d / "tpl/full_body_img/1.jpg").write_bytes(b"\xff\xd8\x00junk"), {}, "1.jpg: not a decodable image"),
    "corrupt later jpeg": (lambda d: (d / "tpl/full_body_img/3.jpg").write_bytes(b"junk"), {}, "3.jpg: not a decodable image"),
    "empty template folder": (lambda d: [p.unlink() for p in (d / "tpl/full_body_img").iterdir()], {}, "holds no .jpg template frames"),
    "missing features": (lambda d: (d / "f.npy").unlink(), {}, "f.npy: audio feature file not found"),
    "non-npy features": (lambda d: (d / "f.npy").write_text("0.1, 0.2"), {}, "f.npy: not a readable .npy array"),
    "features of wrong width": (lambda d: np.save(d / "f.npy", np.zeros((3, 1024), np.float32)), {}, "does not fit mode 'ave'"),
    "zero feature rows": (lambda d: np.save(d / "f.npy", np.zeros((0, 512), np.float32)), {}, "zero feature rows"),
    "nan features": (lambda d: np.save(d / "f.npy", np.full((3, 512), np.nan, np.float32)), {}, "NaN or infinite"),
    "infinite features": (lambda d: np.save(d / "f.npy", np.full((3, 512), np.inf, np.float32)), {}, "NaN or infinite"),
    "missing checkpoint": (lambda d: (d / "ave.pth").unlink(), {}, "ave.pth: checkpoint file not found"),
    "corrupt checkpoint": (lambda d: _rewrite(d / "ave.pth", b"PK\x03\x04 broken"), {}, "ave.pth: a damaged PyTorch checkpoint"),
    "text as checkpoint": (lambda d: _rewrite(d / "ave.pth", b"weights\n"), {}, "ave.pth: a text file, not a PyTorch checkpoint"),
    "template of another size": (lambda d: _resize(d / "tpl/full_body_img/2.jpg"), {},
                                 "2.jpg: is 100x80, but the templates are 200x160 (0.jpg)"),
    "onnx with torch backend": (None, {"--backend": "torch", "--onnx": "f.npy"}, "is for the onnxruntime or openvino backend, not torch"),
    "features and encoder": (None, {"--audio-encoder": "ave.pth"}, "argument --audio-encoder: not allowed with argument --audio-features"),
    "batch size 0": (None, {"--batch-size": "0"}, "argument --batch-size: must be at least 1, got 0"),
    "fps nan": (None, {"--fps": "nan"}, "argument --fps: must be a finite number greater than 0, got 'nan'"),
    "fps inf": (None, {"--fps": "inf"}, "argument --fps: must be a finite number greater than 0, got 'inf'"),
    "output .txt": (None, {"--output": "out.txt"}, "out.txt: has suffix '.txt': expected a video file ending in .mp4, .m4v, .mov, .mkv"),
    "output without suffix": (None, {"--output": "out"}, "out: has no suffix: expected a video file ending in .mp4"),
    "exact with cuda": (None, {"--exact": None, "--device": "cuda"}, "--exact means --backend torch --device cpu"),
    "checkpoint of another mode": (None, {"--checkpoint": "wenet.pth"}, "wenet.pth: has the layout of mode 'wenet'"),
    "unknown mode": (None, {"--mode": "whisper"}, "argument --mode: invalid choice: 'whisper'"),
    "missing audio": (lambda d: (d / "s.wav").unlink(), {}, "s.wav: audio file not found"),
    "non-audio audio": (lambda d: (d / "s.wav").write_text("not a sound"), {}, "s.wav: not usable as audio"),
    "0-byte audio": (lambda d: (d / "s.wav").write_bytes(b""), {}, "s.wav: holds no samples (the file is empty, 0 bytes)"),
    "start frame past templates": (None, {"--start-frame": "4"}, "--start-frame 4 is outside the 4 templates"),
    "unwritable output folder": (None, {"--output": "f.npy/out.mp4"}, "out.mp4: output folder"),
    "a folder as audio": (None, {"--audio": "tpl"}, "tpl: is a folder, expected an audio file"),
    "a folder as checkpoint": (None, {"--checkpoint": "tpl"}, "tpl: is a folder, expected a checkpoint file"),
    # checked before the (here broken) checkpoint is loaded: no model is loaded for an output that cannot be written
    "missing output folder": (lambda d: _rewrite(d / "ave.pth", b"PK\x03\x04 broken"), {"--output": "nodir/out.mp4"},
                              "out.mp4: output folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, good, tmp_path, capsys):
    damage, overrides, message = CASES[case]
    work = tmp_path / "work"
    shutil.copytree(good, work, copy_function=_link_checkpoints)
    if damage is not None:
        damage(work)
    (work / "out.mp4").write_bytes(OLD)
    before = sorted(p.name for p in work.rglob("*"))
    args = {"--checkpoint": "ave.pth", "--template-dir": "tpl", "--audio-features": "f.npy",
            "--audio": "s.wav", "--output": "out.mp4", "--parsing": None, "--quiet": None}
    args.update(overrides)
    argv = ["video"]
    for key, value in args.items():
        plain = key in ("--mode", "--start-frame", "--backend", "--batch-size", "--fps", "--device")
        argv += [key] if value is None else [key, value if plain else str(work / value)]
    status = cli_status(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert (work / "out.mp4").read_bytes() == OLD
    assert sorted(p.name for p in work.rglob("*")) == before, "no file may be added or removed"


def test_debug_shows_the_traceback(good, tmp_path, capsys):
    status = main(["video", "--debug", "--checkpoint", str(good / "missing.pth"), "--template-dir", str(good / "tpl"),
                   "--audio-features", str(good / "f.npy"), "--audio", str(good / "s.wav"), "--output", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" in err and err.rstrip().endswith("missing.pth: checkpoint file not found")


def test_cuda_device_without_gpu_is_a_clean_error(good, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    status = main(["frames", "--quiet", "--device", "cuda", "--checkpoint", str(good / "ave.pth"), "--template-dir",
                   str(good / "tpl"), "--audio-features", str(good / "f.npy"), "--output-dir", str(tmp_path / "x")])
    assert status == 2 and "no CUDA GPU" in capsys.readouterr().err


def _argv(good, work, **overrides):
    args = {"--checkpoint": good / "ave.pth", "--template-dir": good / "tpl", "--audio-features": good / "f.npy",
            "--audio": good / "s.wav", "--output": work / "out.mp4"}
    args.update(overrides)
    return [str(x) for kv in args.items() for x in kv]


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_mid_render_cleans_up_like_ctrl_c(good, tmp_path, signame):
    import signal
    import subprocess
    import sys
    import time

    np.save(tmp_path / "long.npy", synthetic.random_features("ave", 200, seed=1))
    (tmp_path / "out.mp4").write_bytes(OLD)
    argv = [sys.executable, "-m", "frame_generation_pipeline", "video", "--quiet", "--exact",
            *_argv(good, tmp_path, **{"--audio-features": tmp_path / "long.npy"})]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.partial.mp4")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.*.partial.mp4")), "the render never started"
    time.sleep(0.5)  # frames are flowing into ffmpeg
    process.send_signal(getattr(signal, signame))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + getattr(signal, signame)
    assert [line for line in err.splitlines() if not line.startswith("warning: ")] == [f"error: stopped by {signame}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.npy", "out.mp4"], "no hidden temporary left"
    assert (tmp_path / "out.mp4").read_bytes() == OLD
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert leftover == "", "ffmpeg must not outlive the command"


@pytest.mark.parametrize("seconds", ["0", "-1", "0.1"])
def test_demo_refuses_a_length_it_cannot_render_before_writing_anything(tmp_path, capsys, seconds):
    assert cli_status(["demo", "--output", tmp_path / "demo", "--seconds", seconds]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--seconds" in err
    assert list(tmp_path.iterdir()) == []


def test_demo_into_an_existing_file_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "demo").write_text("mine")
    assert cli_status(["demo", "--output", tmp_path / "demo", "--seconds", "0.3"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'demo'}: --output exists and is not a folder: give a new or empty folder\n"
    assert (tmp_path / "demo").read_text() == "mine"


def test_reference_refuses_zero_samples(good, tmp_path, capsys):
    status = cli_status(["reference", "--checkpoint", good / "ave.pth", "--template-dir", good / "tpl",
                         "--audio-features", good / "f.npy", "--output-dir", tmp_path / "b", "--samples", "0"])
    assert status == 2 and "argument --samples: must be at least 1, got 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value, message", [
    ("--retries", "-1", "must be at least 0, got -1"), ("--retries", "1.5", "expected an integer, got '1.5'"),
    ("--gpus-per-worker", "-0.5", "must be a finite number at least 0, got '-0.5'"),
    ("--gpus-per-worker", "nan", "must be a finite number at least 0, got 'nan'"),
])
def test_batch_bounds_its_retries_and_gpus_before_reading_the_jobs(tmp_path, capsys, option, value, message):
    status = cli_status(["batch", tmp_path / "missing.jsonl", option, value])
    assert status == 2
    assert capsys.readouterr().err == f"error: argument {option}: {message} (see `frame-gen batch --help`)\n"


DISK_FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
from frame_generation_pipeline.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_while_writing_frames_names_the_file_and_the_reason(good, tmp_path):
    import subprocess
    import sys

    earlier_output(tmp_path / "f", {"000000.png": b"precious"})
    argv = ["frames", "--quiet", "--exact", "--checkpoint", good / "ave.pth", "--template-dir", good / "tpl",
            "--audio-features", good / "f.npy", "--output-dir", tmp_path / "f"]
    big = synthetic.make_templates(tmp_path / "big", 3, 640, 480, parsing=False)  # PNGs larger than the limit
    argv[argv.index("--template-dir") + 1] = big
    result = subprocess.run([sys.executable, "-c", DISK_FULL, *map(str, argv)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'f' / '000000.png'}: cannot write (File too large)\n"
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [MANIFEST, "000000.png"]
    assert (tmp_path / "f" / "000000.png").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "f"]


def test_speech_of_another_length_than_the_features_is_a_warning(good, tmp_path, capsys):
    write_speech_like_wav(tmp_path / "ten.wav", 10.0)
    assert cli_status(["video", *_argv(good, tmp_path, **{"--audio": tmp_path / "ten.wav"})]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: the speech {tmp_path / 'ten.wav'} lasts 10.00 s but the features give 0.12 s of video "
                        "(3 frames at 25 fps): the speech is cut"]
    write_speech_like_wav(tmp_path / "blip.wav", 0.02)
    assert cli_status(["video", *_argv(good, tmp_path, **{"--audio": tmp_path / "blip.wav"})]) == 0
    assert "lasts 0.02 s but the features give 0.12 s of video (3 frames at 25 fps): the speech is padded with silence" \
        in capsys.readouterr().err


def test_an_fps_off_the_features_rate_is_a_warning(good, tmp_path, capsys):
    assert cli_status(["video", *_argv(good, tmp_path, **{"--fps": "30"})]) == 0
    err = capsys.readouterr().err
    assert "warning: fps 30 is not the ave features' rate (25 per second): lip sync will drift" in err
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_python_api_wrong_types_are_named(good):
    from frame_generation_pipeline import FrameGenerationPipeline, RenderOptions
    from frame_generation_pipeline.errors import ArgumentTypeError

    pipeline = FrameGenerationPipeline(good / "ave.pth", device="cpu", backend="torch")
    with pytest.raises(ArgumentTypeError, match="templates must be a TemplateSet or a template folder path, got int"):
        next(pipeline.generator.iter_frames(123, good / "f.npy"))
    with pytest.raises(ArgumentTypeError, match="audio features must be AudioFeatures, a NumPy array or a feature file path, got float"):
        next(pipeline.generator.iter_frames(good / "tpl", 4.5))
    with pytest.raises(ArgumentTypeError, match="start_frame must be an integer, got float 3.5"):
        next(pipeline.generator.iter_frames(str(good / "tpl"), str(good / "f.npy"), start_frame=3.5))
    with pytest.raises(ArgumentTypeError, match="crf must be an integer, got str '20'"):
        pipeline.generate_video(good / "f.npy", good / "tpl", good / "s.wav", good / "never.mp4", crf="20")
    with pytest.raises(ArgumentTypeError, match="use_parsing must be True or False"):
        RenderOptions(use_parsing="yes")
    frames = list(pipeline.generator.iter_frames(str(good / "tpl"), str(good / "f.npy"), frame_count=1))
    assert len(frames) == 1 and frames[0].shape == (160, 200, 3), "paths as str work"
    assert not (good / "never.mp4").exists()


def test_a_full_disk_while_exporting_into_the_cache_is_a_clean_error(good, tmp_path):
    import os
    import subprocess
    import sys

    argv = ["video", "--quiet", *_argv(good, tmp_path)]
    env = {**os.environ, "FRAME_GEN_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", DISK_FULL, *argv], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'cache' / 'onnx'}/") and result.stderr.endswith(
        ".onnx: cannot write the ONNX model (File too large)\n") and result.stderr.count("\n") == 1
    assert list((tmp_path / "cache" / "onnx").iterdir()) == [] and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--port", "99999", "argument --port: must be within 1..65535, got 99999"),
    ("--ice-address", "nonsense", "argument --ice-address: expected an IP address"),
    ("--host", "203.0.113.5", "--host 203.0.113.5: not an address of this machine"),  # TEST-NET-3: never this machine's
])
def test_serve_refuses_an_unusable_address_or_port_in_one_line(good, tmp_path, capsys, option, value, message):
    status = cli_status(["serve", "--checkpoint", str(good / "ave.pth"), "--template-dir", str(good / "tpl"),
                         "--audio-encoder", str(good / "ave.pth"), "--port", "8010", option, value])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err, err


def test_a_file_that_is_no_checkpoint_is_refused_before_the_features_are_computed(good, tmp_path, capsys, monkeypatch,
                                                                                 encoder_path):
    from frame_generation_pipeline.models import audio_models

    monkeypatch.setattr(audio_models, "load_audio_model", lambda *_: pytest.fail("the audio model loaded first"))
    status = cli_status(["video", "--checkpoint", good / "s.wav", "--template-dir", good / "tpl", "--audio-encoder",
                         encoder_path, "--audio", good / "s.wav", "--output", tmp_path / "out.mp4"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"error: {good / 's.wav'}: not a PyTorch checkpoint") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_an_option_is_taken_only_as_spelled_in_full(capsys):
    # `--audio` once read as the start of --audio-encoder: "--demo ...: drop --audio-encoder", an option not given
    assert cli_status(["serve", "--demo", "--audio", "x.wav"]) == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --audio x.wav (see `frame-gen --help`)\n"


def test_live_with_a_mode_no_audio_model_computes_says_so_without_naming_an_option_it_lacks(good, capsys):
    status = cli_status(["live", "--checkpoint", str(good / "ave.pth"), "--template-dir", str(good / "tpl"),
                         "--audio-encoder", str(good / "ave.pth"), "--audio", str(good / "s.wav"), "--mode", "wenet",
                         "--output", str(good / "never.mp4")])
    err = capsys.readouterr().err
    assert status == 2 and "nothing here computes wenet features" in err and "--audio-features" not in err, err
    assert not (good / "never.mp4").exists()


def test_ctrl_c_mid_live_render_ends_the_render_thread_first_and_leaves_nothing(good, tmp_path, encoder_path):
    import signal
    import subprocess
    import sys
    import time

    write_speech_like_wav(tmp_path / "long.wav", 3.0)
    argv = [sys.executable, "-m", "frame_generation_pipeline", "live", "--quiet", "--realtime", "--checkpoint",
            str(good / "ave.pth"), "--template-dir", str(good / "tpl"), "--audio-encoder", str(encoder_path),
            "--audio", str(tmp_path / "long.wav"), "--output", str(tmp_path / "live.mp4")]
    # Ctrl-C as a terminal sends it: a shell's background job (`make test &`) starts with SIGINT ignored,
    # and Python then leaves it ignored (the render would end normally, with status 0)
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".live-*")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert list(tmp_path.glob(".live-*")), "the session never started"
    time.sleep(1.0)  # speech is being rendered in the session's thread
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err  # not an abort from a network thread still running at exit
    assert [line for line in err.splitlines() if not line.startswith("warning: ")] == ["error: interrupted"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"], "no hidden temporary left"
