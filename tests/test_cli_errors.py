"""Every bad input of `frame-gen video`: exit 2, one `error:` line naming the culprit, no traceback,
no output or temporary file left, an existing output untouched."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from frame_generation_pipeline import synthetic
from frame_generation_pipeline.cli import main
from frame_generation_pipeline.demo import write_speech_like_wav

OLD = b"a good video from yesterday"


@pytest.fixture(scope="module")
def good(tmp_path_factory, checkpoints):
    root = tmp_path_factory.mktemp("good")
    synthetic.make_templates(root / "tpl", 4, 200, 160, parsing=True)
    np.save(root / "f.npy", synthetic.random_features("ave", 3, seed=0))
    write_speech_like_wav(root / "s.wav", 0.5)
    shutil.copy(checkpoints["ave"], root / "ave.pth")
    shutil.copy(checkpoints["wenet"], root / "wenet.pth")
    return root


def _lms(path, edit):
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")


def _set_line(index, text):
    def edit(lines):
        lines[index] = text
    return edit


CASES = {
    "missing template folder": (lambda d: shutil.rmtree(d / "tpl"), {}, "tpl: template folder not found"),
    "missing landmarks folder": (lambda d: shutil.rmtree(d / "tpl/landmarks"), {}, "landmarks: template folder not found"),
    "missing lms": (lambda d: (d / "tpl/landmarks/2.lms").unlink(), {}, "2.lms: template 2 of 0..3 is missing"),
    "missing jpg": (lambda d: (d / "tpl/full_body_img/3.jpg").rename(d / "tpl/full_body_img/9.jpg"), {}, "3.jpg: template 3"),
    "short lms": (lambda d: _lms(d / "tpl/landmarks/2.lms", lambda l: l.__delitem__(slice(40, None))), {}, "2.lms: has 40 landmarks"),
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
    "corrupt checkpoint": (lambda d: (d / "ave.pth").write_bytes(b"PK\x03\x04 broken"), {}, "ave.pth: not a readable PyTorch checkpoint"),
    "checkpoint of another mode": (None, {"--checkpoint": "wenet.pth"}, "wenet.pth: has the layout of mode 'wenet'"),
    "unknown mode": (None, {"--mode": "whisper"}, "unknown mode 'whisper'"),
    "missing audio": (lambda d: (d / "s.wav").unlink(), {}, "s.wav: audio file not found"),
    "non-audio audio": (lambda d: (d / "s.wav").write_text("not a sound"), {}, "s.wav: not usable as audio"),
    "start frame past templates": (None, {"--start-frame": "4"}, "start_frame 4 is outside the 4 templates"),
    "unwritable output folder": (None, {"--output": "f.npy/out.mp4"}, "out.mp4: output folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, good, tmp_path, capsys):
    damage, overrides, message = CASES[case]
    work = tmp_path / "work"
    shutil.copytree(good, work)
    if damage is not None:
        damage(work)
    (work / "out.mp4").write_bytes(OLD)
    before = sorted(p.name for p in work.rglob("*"))
    args = {"--checkpoint": "ave.pth", "--template-dir": "tpl", "--audio-features": "f.npy",
            "--audio": "s.wav", "--output": "out.mp4", "--parsing": None, "--quiet": None}
    args.update(overrides)
    argv = ["video"]
    for key, value in args.items():
        argv += [key] if value is None else [key, str(work / value) if key not in ("--mode", "--start-frame") else value]
    status = main(argv)
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


def test_help_of_every_subcommand_has_an_example(capsys):
    for command in ("video", "frames", "features", "export-onnx", "reference", "verify-reference", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "example:" in capsys.readouterr().out


def test_cuda_device_without_gpu_is_a_clean_error(good, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    status = main(["frames", "--quiet", "--device", "cuda", "--checkpoint", str(good / "ave.pth"), "--template-dir",
                   str(good / "tpl"), "--audio-features", str(good / "f.npy"), "--output-dir", str(tmp_path / "x")])
    assert status == 2 and "no CUDA GPU" in capsys.readouterr().err
