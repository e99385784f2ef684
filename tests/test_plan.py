"""The render plan: what can be checked without a model is checked before one loads; no output ever
overwrites an input; the batch is capped; misleading messages say what is wrong; the speech is
probed and the audio encoder loaded once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.files import MANIFEST, file_sha256

from .helpers import WITHOUT_TORCH, cli_status

BROKEN = b"PK\x03\x04 broken"


@pytest.fixture(scope="module")
def world(tmp_path_factory, checkpoints, encoder_path):
    root = tmp_path_factory.mktemp("plan")
    synthetic.make_templates(root / "tpl", 4, 200, 160, parsing=False)
    np.save(root / "f.npy", synthetic.random_features("ave", 3, seed=0))
    write_speech_like_wav(root / "s.wav", 3 / 25)
    write_speech_like_wav(root / "talk.wav", 0.4)
    shutil.copy(checkpoints["ave"], root / "ave.pth")
    shutil.copy(encoder_path, root / "enc.pth")
    return root


@pytest.fixture
def work(world, tmp_path):
    """A private copy of the world (checkpoints hard-linked), so that a test may break or link files."""
    target = tmp_path / "w"
    shutil.copytree(world, target, copy_function=lambda a, b: os.link(a, b) if a.endswith(".pth") else shutil.copy2(a, b))
    return target


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _video(work, **overrides) -> list[str]:
    args = {"--checkpoint": work / "ave.pth", "--template-dir": work / "tpl", "--audio-features": work / "f.npy",
            "--audio": work / "s.wav", "--output": work / "out.mp4"}
    args.update(overrides)
    argv = ["video", "--quiet"]
    for key, value in args.items():
        if value is not False:  # False drops an argument
            argv += [key] if value is None else [key, str(value)]
    return argv


def _unchanged(paths):
    return {path: file_sha256(path) for path in paths}


# --- outputs that are inputs ------------------------------------------------------------------

def test_export_over_its_own_checkpoint_is_refused_and_the_file_kept(work, capsys):
    before = _unchanged([work / "enc.pth", work / "ave.pth"])
    assert cli_status(["export-onnx", "--audio-encoder", work / "enc.pth", "--output", work / "enc.pth"]) == 2
    assert "--output is the input --audio-encoder" in _error(capsys)
    os.symlink(work / "ave.pth", work / "ave.onnx")  # through a link
    assert cli_status(["export-onnx", "--checkpoint", work / "ave.pth", "--output", work / "ave.onnx"]) == 2
    assert f"--output is the input --checkpoint ({work / 'ave.pth'})" in _error(capsys)
    assert _unchanged([work / "enc.pth", work / "ave.pth"]) == before


def test_features_over_the_speech_is_refused_and_the_speech_kept(work, capsys):
    before = _unchanged([work / "talk.wav"])
    assert cli_status(["features", "--audio-encoder", work / "enc.pth", "--audio", work / "talk.wav",
                       "--output", work / "talk.wav"]) == 2
    assert "talk.wav: --output is the input --audio" in _error(capsys)
    os.link(work / "talk.wav", work / "hard.npy")  # a hard link is the same file too
    assert cli_status(["features", "--audio-encoder", work / "enc.pth", "--audio", work / "talk.wav",
                       "--output", work / "hard.npy"]) == 2
    assert "hard.npy: --output is the input --audio" in _error(capsys)
    assert _unchanged([work / "talk.wav"]) == before


def test_a_preview_over_its_own_recording_is_refused_and_the_recording_kept(work, capsys):
    write_speech_like_wav(work / "talk.wav", 1.0)
    from frame_generation_pipeline.audio.ffmpeg import ffmpeg_executable

    subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-i", work / "talk.wav", work / "talk.mp4"], check=True)
    before = _unchanged([work / "talk.mp4"])
    argv = _video(work, **{"--audio": work / "talk.mp4", "--output": work / "talk.mp4", "--max-frames": "2"})
    assert cli_status(argv) == 2
    assert "talk.mp4: --output is the input --audio" in _error(capsys)
    assert _unchanged([work / "talk.mp4"]) == before


@pytest.mark.parametrize("command", ["frames", "reference"])
def test_an_output_folder_holding_an_input_is_refused(work, capsys, command):
    before = _unchanged(sorted((work / "tpl").rglob("*.jpg")))
    assert cli_status([command, "--quiet", "--checkpoint", work / "ave.pth", "--template-dir", work / "tpl",
                       "--audio-features", work / "f.npy", "--output-dir", work]) == 2
    err = _error(capsys)
    assert "--output-dir holds the input --checkpoint" in err
    assert _unchanged(sorted((work / "tpl").rglob("*.jpg"))) == before


def test_live_outputs_over_inputs_are_refused(work, capsys):
    argv = ["live", "--quiet", "--checkpoint", work / "ave.pth", "--template-dir", work / "tpl", "--audio-encoder",
            work / "enc.pth", "--audio", work / "talk.wav", "--output", work / "out.mp4"]
    assert cli_status([*argv, "--report", work / "talk.wav"]) == 2
    assert "talk.wav: --report is the input --audio" in _error(capsys)
    assert cli_status([*argv, "--frames-dir", work / "tpl"]) == 2
    assert "--frames-dir is the input --template-dir" in _error(capsys)


def test_a_batch_job_writing_over_an_input_is_refused(work, capsys):
    import json

    job = {"checkpoint": str(work / "ave.pth"), "template_dir": str(work / "tpl"), "audio": str(work / "s.wav"),
           "audio_features": str(work / "f.npy"), "output": str(work / "s.wav")}
    (work / "jobs.jsonl").write_text(json.dumps(job) + "\n")
    from frame_generation_pipeline.app.farm.jobs import read_jobs
    from frame_generation_pipeline.errors import OutputError

    with pytest.raises(OutputError, match="the output of job 1 is the input audio of job 1"):
        read_jobs(work / "jobs.jsonl")



def test_live_refuses_an_utterance_too_short_for_the_encoder_as_video_does(work, capsys):
    write_speech_like_wav(work / "tiny.wav", 0.1)
    common = ["--quiet", "--checkpoint", work / "ave.pth", "--template-dir", work / "tpl", "--audio-encoder", work / "enc.pth"]
    assert cli_status(["live", *common, "--audio", work / "talk.wav", work / "tiny.wav", "--output", work / "l.mp4"]) == 2
    live = _error(capsys)
    assert cli_status(["video", *common, "--audio", work / "tiny.wav", "--output", work / "v.mp4"]) == 2
    assert _error(capsys) == live and f"{work / 'tiny.wav'}: too short: " in live
    assert not (work / "l.mp4").exists() and not (work / "v.mp4").exists()

# --- output names ---------------------------------------------------------------------------

def test_feature_format_comes_from_the_suffix(work, capsys):
    common = ["features", "--quiet", "--audio-encoder", work / "enc.pth", "--audio", work / "talk.wav"]
    assert cli_status([*common, "--output", work / "x.csv"]) == 2
    assert "x.csv: has suffix '.csv': expected a feature file ending in .npy, or .bin" in _error(capsys)
    assert cli_status([*common, "--output", work / "x.npy", "--format", "bin"]) == 2
    assert "--format bin disagrees with --output" in _error(capsys)
    assert cli_status([*common, "--output", work / "f.bin"]) == 0
    description = (work / "f.bin.json").read_text()
    assert '"feature_size": 512' in description
    assert (work / "f.bin").stat().st_size == 4 * 512 * int(description.split('"num_frames": ')[1].split(",")[0])
    assert not (work / "x.csv").exists() and not (work / "x.npy").exists()


def test_export_output_must_be_onnx_and_the_opset_known_before_loading(work, capsys):
    (work / "ave.pth").unlink()
    (work / "ave.pth").write_bytes(BROKEN)  # a load would fail with another message
    assert cli_status(["export-onnx", "--checkpoint", work / "ave.pth", "--output", work / "m.pt"]) == 2
    assert "--output " + str(work / "m.pt") + " must end in .onnx" in _error(capsys)
    assert cli_status(["export-onnx", "--checkpoint", work / "ave.pth", "--output", work / "m.onnx", "--opset", "99"]) == 2
    assert "argument --opset: must be within 11..20, got 99" in capsys.readouterr().err


# --- the batch ------------------------------------------------------------------------------

def test_a_batch_larger_than_the_render_is_capped_with_one_warning(work, capsys):
    argv = _video(work, **{"--batch-size": "100000", "--exact": None})
    argv.remove("--quiet")
    assert cli_status(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("warning: ")] == [
        "warning: batch size 100000 is more than this render can use (3 frames are rendered): using 3"]
    assert ", batch 3, " in err[-1]


def test_the_batch_is_capped_by_free_memory(monkeypatch, caplog):
    from frame_generation_pipeline import plan

    monkeypatch.setattr(plan, "available_memory", lambda: 1 << 30)
    assert plan.choose_batch(100, 50) == 2  # half of 1 GB at 200 MB per frame
    assert "a batch takes about 200 MB per frame and 1024 MB are free" in caplog.text
    assert plan.choose_batch(2, 50) == 2 and plan.choose_batch(8, 1, quiet=True) == 1


def test_the_batch_is_capped_where_a_larger_one_adds_no_speed(monkeypatch, caplog):
    from frame_generation_pipeline import plan

    monkeypatch.setattr(plan, "available_memory", lambda: 1 << 40)
    assert plan.choose_batch(100000, 5000) == plan.MAX_BATCH == 8  # not 2700 frames in flight, as memory allows
    assert "batch size 100000 is more than this render can use (a larger batch adds no speed, only memory" in caplog.text
    assert plan.choose_batch(8, 5000) == 8 and plan.choose_batch(3, 5000) == 3


# --- mistakes found before any model loads --------------------------------------------------

def _resize(path):
    import cv2

    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (100, 80)))


BEFORE_THE_MODEL = {
    "features of another mode": (None, {"--mode": "wenet"}, "does not fit mode 'wenet'"),
    "start frame past the templates": (None, {"--start-frame": "4"}, "--start-frame 4 is outside the 4 templates"),
    "template of another size": (lambda w: _resize(w / "tpl/full_body_img/2.jpg"), {},
                                 "2.jpg: is 100x80, but the templates are 200x160"),
    "hubert with the ave encoder": (None, {"--mode": "hubert", "--audio-features": False, "--audio-encoder": "enc.pth"},
                                    "--audio-encoder computes ave features, but --mode is 'hubert'"),
    "template folder is full_body_img": (None, {"--template-dir": "tpl/full_body_img"},
                                         "is the full_body_img/ folder itself: give the folder that holds full_body_img/"),
}


@pytest.mark.parametrize("case", list(BEFORE_THE_MODEL))
def test_a_mistake_is_found_before_any_model_loads(work, capsys, case):
    damage, overrides, message = BEFORE_THE_MODEL[case]
    if damage is not None:
        damage(work)
    for model in ("ave.pth", "enc.pth"):  # unreadable: loading either would give another error
        (work / model).unlink()
        (work / model).write_bytes(BROKEN)
    resolved = {key: (value if value is False or key in ("--mode", "--start-frame") else work / value)
                for key, value in overrides.items()}
    argv = _video(work, **resolved)
    assert cli_status(argv) == 2
    assert message in _error(capsys)


def test_a_mistake_found_without_the_model_does_not_even_import_torch(work):
    script = WITHOUT_TORCH + "from frame_generation_pipeline.app.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    argv = _video(work, **{"--start-frame": "7", "--backend": "onnxruntime"})
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: --start-frame 7 is outside the 4 templates (expected 0..3)\n"


def test_the_audio_encoder_is_opened_before_the_unet(work, capsys):
    (work / "ave.pth").unlink()
    (work / "ave.pth").write_bytes(BROKEN)
    (work / "enc.pth").unlink()
    (work / "enc.pth").write_text("not weights\n")
    argv = _video(work, **{"--audio-encoder": work / "enc.pth", "--audio": work / "talk.wav", "--audio-features": False})
    assert cli_status(argv) == 2
    assert "enc.pth: a text file, not a PyTorch checkpoint" in _error(capsys)


# --- messages that said the wrong thing ------------------------------------------------------

def test_bf16_on_a_cpu_without_it_says_so(work, capsys, monkeypatch):
    from frame_generation_pipeline import devices

    monkeypatch.setattr(devices, "cpu_summary", lambda: {"avx2": True, "avx512": False, "bf16": False, "amx": False})
    assert cli_status(_video(work, **{"--precision": "bf16", "--device": "cpu"})) == 2
    assert "precision 'bf16' is not supported by this CPU (it has no AVX-512 BF16 or AMX): it supports fp32" in _error(capsys)


def test_a_swapped_unet_and_audio_encoder_are_named(work, capsys):
    argv = _video(work, **{"--checkpoint": work / "enc.pth", "--audio-encoder": work / "ave.pth", "--audio": work / "talk.wav",
                          "--audio-features": False})
    assert cli_status(argv) == 2
    assert "ave.pth: holds a SyncTalk_2D U-Net, not the ave audio encoder: the U-Net checkpoint and the audio encoder " \
           "look swapped" in _error(capsys)
    assert cli_status(["frames", "--quiet", "--checkpoint", work / "enc.pth", "--template-dir", work / "tpl",
                       "--audio-features", work / "f.npy", "--output-dir", work / "frames"]) == 2
    assert "enc.pth: holds the ave audio encoder, not a SyncTalk_2D U-Net" in _error(capsys)


def test_an_empty_wav_holds_no_samples(work, capsys):
    with wave.open(str(work / "empty.wav"), "wb") as empty:
        empty.setnchannels(1)
        empty.setsampwidth(2)
        empty.setframerate(16000)
    assert cli_status(["features", "--audio-encoder", work / "enc.pth", "--audio", work / "empty.wav",
                       "--output", work / "f2.npy"]) == 2
    assert _error(capsys) == f"error: {work / 'empty.wav'}: holds no samples (the recording is empty)\n"


# --- the speech-length warning ----------------------------------------------------------------

def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]


def test_the_speech_length_warning_needs_more_than_one_frame(work, capsys):
    write_speech_like_wav(work / "one.wav", 4 / 25)  # the 3 feature rows + exactly one frame
    assert cli_status([a for a in _video(work, **{"--audio": work / "one.wav"}) if a != "--quiet"]) == 0
    assert _warnings(capsys) == []
    write_speech_like_wav(work / "part.wav", 4.25 / 25)  # and a quarter: one whole frame cut, and a part of one
    assert cli_status([a for a in _video(work, **{"--audio": work / "part.wav"}) if a != "--quiet"]) == 0
    assert _warnings(capsys) == []
    write_speech_like_wav(work / "two.wav", 5 / 25)
    assert cli_status([a for a in _video(work, **{"--audio": work / "two.wav"}) if a != "--quiet"]) == 0
    assert [w.split(" lasts ")[1] for w in _warnings(capsys)] == [
        "0.20 s but the features give 0.12 s of video (3 frames at 25 fps): the speech is cut"]


def test_the_speech_length_warning_is_the_same_with_features_and_with_the_encoder(work, capsys):
    write_speech_like_wav(work / "cut.wav", 5 / 25)  # 4 frames: at 30 fps, 0.13 s of video for 0.20 s of speech
    assert cli_status(["features", "--quiet", "--audio-encoder", work / "enc.pth", "--audio", work / "cut.wav",
                       "--output", work / "cut.npy"]) == 0
    given = _video(work, **{"--audio": work / "cut.wav", "--audio-features": work / "cut.npy", "--fps": "30"})
    computed = _video(work, **{"--audio": work / "cut.wav", "--audio-encoder": work / "enc.pth", "--fps": "30",
                               "--audio-features": False})
    assert cli_status(given) == 0
    from_file = _warnings(capsys)
    assert cli_status(computed) == 0
    assert _warnings(capsys) == from_file and any(w.endswith("lasts 0.20 s but the features give 0.13 s of video (4 frames at 30 fps): "
                                                             "the speech is cut") for w in from_file), from_file


# --- the Python API: one plan, one probe, one encoder ------------------------------------------

def test_the_api_probes_the_speech_once_and_loads_the_encoder_once(work, monkeypatch):
    from frame_generation_pipeline import FrameGenerationPipeline, RenderOptions, plan
    from frame_generation_pipeline.audio import ffmpeg, speech
    from frame_generation_pipeline.models import audio_encoder

    probes, loads = [], []
    real_probe, real_encoder = ffmpeg.probe_audio, audio_encoder.AudioEncoder

    def probe(path):
        probes.append(path)
        return real_probe(path)

    class Counted(real_encoder):
        def __init__(self, *args, **kwargs):
            loads.append(args)
            super().__init__(*args, **kwargs)

    for module in (plan, speech, ffmpeg):
        monkeypatch.setattr(module, "probe_audio", probe)
    monkeypatch.setattr(audio_encoder, "AudioEncoder", Counted)
    pipeline = FrameGenerationPipeline(work / "ave.pth", device="cpu", backend="torch")
    options = RenderOptions(max_frames=2)
    first = pipeline.video(work / "a.mp4", work / "tpl", work / "talk.wav", audio_encoder=work / "enc.pth", options=options)
    assert len(probes) == 1
    second = pipeline.video(work / "b.mp4", work / "tpl", work / "talk.wav", audio_encoder=str(work / "enc.pth"), options=options)
    assert len(loads) == 1 and first.frames == second.frames == 2
    checked = pipeline.plan("frames", work / "fr", work / "tpl", audio=work / "talk.wav", audio_encoder=work / "enc.pth")
    assert checked.needs_features and checked.frame_count == 9 and checked.batch_size is None
    assert pipeline.render(checked).frames == 9 and len(loads) == 1
    assert sorted(p.name for p in (work / "fr").iterdir()) == [MANIFEST] + [f"{k:06d}.png" for k in range(9)]


def test_a_plan_checks_its_audio_model_once_and_reads_its_sources_into_a_record(work, monkeypatch):
    from frame_generation_pipeline.models.audio_models import AudioModel
    from frame_generation_pipeline.plan import plan_render, read_sources

    checks, real = [], AudioModel.check
    monkeypatch.setattr(AudioModel, "check", lambda self, mode: checks.append(self.path) or real(self, mode))
    planned = plan_render("frames", work / "fr", work / "tpl", "ave", None, work / "talk.wav", work / "enc.pth")
    assert checks == [work / "enc.pth"] and planned.needs_features and planned.frame_count == 9
    sources = read_sources("features", planned.mode, None, work / "talk.wav", planned.audio_model)
    assert len(checks) == 2, "read_sources on its own checks the model it is given, once"
    assert (sources.features, sources.audio_model, sources.frames) == (None, planned.audio_model, 9)
    assert np.array_equal(sources.speech, planned.speech) and sources.audio[0].path == planned.audio[0].path


@pytest.mark.parametrize("command", ["frames", "reference"])
def test_an_output_folder_of_the_users_files_is_refused_before_any_model_loads(work, capsys, command):
    mine = work / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("the user's\n")
    (work / "ave.pth").unlink()
    (work / "ave.pth").write_bytes(BROKEN)  # loading it would give another error
    argv = [command, "--quiet", "--checkpoint", str(work / "ave.pth"), "--template-dir", str(work / "tpl"),
            "--audio-features", str(work / "f.npy"), "--output-dir", str(mine)]
    assert cli_status(argv) == 2
    assert "holds 'keep.txt', which this command did not write" in _error(capsys)
    assert (mine / "keep.txt").read_text() == "the user's\n"
