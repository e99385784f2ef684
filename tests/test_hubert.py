"""The hubert path: features from speech equal to a transcription of upstream's function, clip by
clip, and the refusals of a model folder that cannot be used."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import soundfile

from frame_generation_pipeline.app.farm.jobs import job_from
from frame_generation_pipeline.errors import AudioError, ConfigurationError, ModelFileError
from frame_generation_pipeline.models.hubert import HubertEncoder, clip_bounds, expected_rows
from frame_generation_pipeline.pipeline import FrameGenerationPipeline

from .helpers import cli_status
from .spec_reference import assert_same_frame, naive_hubert_features, render

SMALL_CLIP = 320 * 20  # 0.4 s: several clips from a couple of seconds of speech


def _wav(path, samples, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.normal(size=samples)
    data = np.stack([voice * (1 - 0.4 * c) + 0.02 * c for c in range(channels)], axis=1)
    soundfile.write(path, data.astype(np.float32), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def encoders(hubert_model):
    return {"default": HubertEncoder(hubert_model, device="cpu"), "small": HubertEncoder(hubert_model, "cpu", SMALL_CLIP)}


@pytest.mark.parametrize("samples, clip, rows", [
    (8000, "default", 24),            # shorter than one clip, even row count
    (8400, "default", 26),            # (8400 - 80) // 320 = 26
    (16000, "default", 49),           # odd: the last row is dropped
    (16000, "small", 49),             # two whole clips and a remainder
    (3 * SMALL_CLIP, "small", 59),    # whole clips only, the last one without its overlap
    (3 * SMALL_CLIP + 350, "small", 60),  # a remainder shorter than a kernel: no clip of its own
])
def test_features_equal_upstreams_function(encoders, hubert_model, tmp_path, samples, clip, rows):
    wav = _wav(tmp_path / "speech.wav", samples)
    assert expected_rows(samples) == rows
    actual = encoders[clip].features_from_audio(wav)
    expected = naive_hubert_features(wav, hubert_model, encoders[clip].clip_samples)
    assert actual.shape == (rows // 2, 2, 1024) and actual.dtype == np.float32
    assert np.array_equal(actual, expected)


def test_a_stereo_file_is_read_from_its_first_channel(encoders, hubert_model, tmp_path):
    wav = _wav(tmp_path / "stereo.wav", 9000, channels=2)
    actual = encoders["default"].features_from_audio(wav)
    assert np.array_equal(actual, naive_hubert_features(wav, hubert_model))


def test_clips_cover_every_row_once():
    for samples in (399, 400, 719, 720, 6400, 6479, 6480, 6800, 20000):
        bounds = clip_bounds(samples, SMALL_CLIP)
        rows = sum(max(0, (end - start - 400) // 320 + 1) for start, end in bounds)
        assert rows == expected_rows(samples), samples
        assert all(start % SMALL_CLIP == 0 and end <= samples for start, end in bounds)


def test_stages_hold_the_normalised_input(encoders):
    samples = np.random.default_rng(2).normal(0.1, 0.3, 12000).astype(np.float32)
    stages = encoders["default"].stages(samples)
    assert abs(float(stages.input_values.mean())) < 1e-4 and abs(float(stages.input_values.std()) - 1) < 1e-3
    assert stages.hidden.shape == (37, 1024)
    assert np.array_equal(stages.features.reshape(-1, 1024), stages.hidden[:36])


def test_too_short_speech_is_refused(encoders):
    with pytest.raises(AudioError, match="too short for hubert"):
        encoders["default"].features_from_samples(np.zeros(600, np.float32))


def test_a_missing_or_incomplete_folder_says_how_to_get_one(tmp_path, hubert_model):
    with pytest.raises(ModelFileError, match="huggingface-cli download facebook/hubert-large-ls960-ft"):
        HubertEncoder(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((hubert_model / "config.json").read_text())
    with pytest.raises(ModelFileError, match="missing preprocessor_config.json, model.safetensors or pytorch_model.bin"):
        HubertEncoder(partial)


def test_cli_features_equal_upstreams_function(hubert_model, tmp_path, capsys):
    wav = _wav(tmp_path / "a.wav", 16400)
    output = tmp_path / "f.npy"
    assert cli_status(["features", "--hubert-model", hubert_model, "--audio", wav, "--output", output]) == 0
    assert "25 frames x 2 x 1024 hubert features" in capsys.readouterr().err
    assert np.array_equal(np.load(output), naive_hubert_features(wav, hubert_model))


def test_cli_features_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    wav = _wav(tmp_path / "a.wav", 8000)
    status = cli_status(["features", "--hubert-model", tmp_path / "none", "--audio", wav, "--output", tmp_path / "f.npy"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "huggingface-cli download" in err[0]
    assert not (tmp_path / "f.npy").exists()


@pytest.fixture(scope="module")
def hubert_wav(tmp_path_factory):
    return _wav(tmp_path_factory.mktemp("hubert-speech") / "speech.wav", 4400)  # 13 rows: 6 frames


def test_frames_from_speech_equal_the_naive_render(hubert_model, hubert_wav, checkpoints, templates_640, tmp_path):
    status = cli_status(["frames", "--quiet", "--exact", "--checkpoint", checkpoints["hubert"], "--hubert-model", hubert_model,
                         "--audio", hubert_wav, "--template-dir", templates_640, "--output-dir", tmp_path / "f"])
    assert status == 0
    expected = list(render(str(checkpoints["hubert"]), "hubert", str(templates_640),
                           naive_hubert_features(hubert_wav, hubert_model)))
    frames = sorted((tmp_path / "f").glob("*.png"))
    assert len(frames) == len(expected) == 6
    for path, frame in zip(frames, expected):
        assert_same_frame(cv2.imread(str(path)), frame)


def test_a_hubert_model_with_mode_ave_is_refused_before_loading(hubert_wav, checkpoints, templates_640, tmp_path, capsys):
    status = cli_status(["frames", "--mode", "ave", "--checkpoint", checkpoints["hubert"], "--hubert-model", tmp_path / "nowhere",
                         "--audio", hubert_wav, "--template-dir", templates_640, "--output-dir", tmp_path / "f"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "--hubert-model computes hubert features, but --mode is 'ave'" in err[0] and "--audio-features" in err[0], \
        "frames takes feature files: the refusal names the option"


def test_the_pipeline_loads_a_hubert_model_once_and_refuses_it_for_ave(hubert_model, hubert_wav, checkpoints):
    pipeline = FrameGenerationPipeline(checkpoints["hubert"], mode="hubert", device="cpu", backend="torch")
    first = pipeline.features(audio=hubert_wav, hubert_model=hubert_model)
    assert pipeline.audio_model(hubert_model=hubert_model) is pipeline.audio_model(hubert_model=str(hubert_model))
    assert np.array_equal(first.rows().reshape(-1, 2, 1024), naive_hubert_features(hubert_wav, hubert_model))
    ave = FrameGenerationPipeline(checkpoints["ave"], mode="ave", device="cpu", backend="torch")
    with pytest.raises(ConfigurationError, match="computes hubert features"):
        ave.features(audio=hubert_wav, hubert_model=hubert_model)


@pytest.mark.parametrize("data, mode", [({"hubert_model": "h"}, "hubert"), ({"audio_encoder": "e"}, "ave"),
                                        ({"audio_features": "f.npy", "mode": "hubert"}, "hubert"),
                                        ({"audio_features": "f.npy"}, "ave")])
def test_batch_jobs_infer_the_mode_from_the_audio_model(data, mode):
    job = job_from({"checkpoint": "c.pth", "template_dir": "t", "audio": "a.wav", "output": "o.mp4", **data}, "job")
    assert job.mode == mode


@pytest.mark.parametrize("data, message", [({"hubert_model": "h", "mode": "ave"}, "--hubert-model computes hubert features"),
                                           ({"hubert_model": "h", "audio_encoder": "e"}, "not audio_encoder and hubert_model")])
def test_batch_jobs_refuse_a_mismatched_or_doubled_audio_model(data, message):
    with pytest.raises(ConfigurationError, match=message):
        job_from({"checkpoint": "c.pth", "template_dir": "t", "audio": "a.wav", "output": "o.mp4", **data}, "job")


def test_reference_bundle_of_speech_holds_and_verifies_the_hubert_stages(hubert_model, hubert_wav, checkpoints,
                                                                         templates_640, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    assert cli_status(["reference", "--quiet", "--checkpoint", checkpoints["hubert"], "--hubert-model", hubert_model,
                       "--audio", hubert_wav, "--template-dir", templates_640, "--output-dir", bundle, "--samples", "2"]) == 0
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["mode"] == "hubert" and metadata["speech"]["kind"] == "hubert" and metadata["speech"]["rows"] == 13
    assert np.array_equal(np.load(bundle / "hubert_hidden.npy").reshape(-1)[: 12 * 1024],
                          naive_hubert_features(hubert_wav, hubert_model).reshape(-1))
    capsys.readouterr()
    assert cli_status(["verify-reference", bundle, "--checkpoint", checkpoints["hubert"], "--hubert-model", hubert_model]) == 0
    out = capsys.readouterr().out
    assert "OK: 8 of 8 stages checked" in out and "hidden states -> network audio input" in out
    hidden = np.load(bundle / "hubert_hidden.npy")
    hidden[8] += 0.5  # row 8 is frame 4's first, inside frame 0's window (frames -8..7)
    np.save(bundle / "hubert_hidden.npy", hidden)
    assert cli_status(["verify-reference", bundle, "--hubert-model", hubert_model]) == 1
    assert "MISMATCH in stage(s): hubert, audio_window" in capsys.readouterr().out


def test_a_farm_worker_plans_a_hubert_job_from_speech(hubert_model, hubert_wav, checkpoints, templates_640, tmp_path):
    from frame_generation_pipeline.app.farm.worker import load_pipeline, plan

    job = job_from({"checkpoint": str(checkpoints["hubert"]), "template_dir": str(templates_640), "audio": str(hubert_wav),
                    "output": str(tmp_path / "o.mp4"), "hubert_model": str(hubert_model), "backend": "torch"}, "job")
    pipeline = load_pipeline(job, "cpu")
    planned = plan(pipeline, job, tmp_path)
    assert planned["frames"] == 6 and pipeline.mode.name == "hubert"
    assert np.array_equal(np.load(planned["features"]), naive_hubert_features(hubert_wav, hubert_model).reshape(6, 2048))
    loaded = pipeline.audio_model(hubert_model=job.hubert_model)
    plan(pipeline, job, tmp_path)
    assert pipeline.audio_model(hubert_model=job.hubert_model) is loaded, "the model is loaded once per worker pipeline"
