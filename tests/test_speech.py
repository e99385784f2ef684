"""Speech -> ave features: against a naive transcription of SPEC.md and of the librosa calls upstream makes
(spec_reference.py; librosa itself is not imported: its numba functions compile for 20 CPU-s in a new venv)."""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest
import soundfile
import torch

from frame_generation_pipeline.app.cli import main
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.audio.ffmpeg import ffmpeg_executable
from frame_generation_pipeline.audio.mel import log_mel_spectrogram
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.errors import AudioError, CheckpointError
from frame_generation_pipeline.inputs.features import read_feature_array
from frame_generation_pipeline.models.audio_encoder import AudioEncoder

from .conftest import DATA
from .spec_reference import librosa_load, librosa_mel, librosa_stft, naive_ave_features, preemphasis

TALK = DATA / "talk_hb_6s.wav"  # 6 s of real speech, a silent second in the middle


@pytest.fixture(scope="module")
def signals(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    t16 = np.arange(16000) / 16000
    soundfile.write(root / "silence.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    soundfile.write(root / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t16), 16000, subtype="PCM_16")
    t8 = np.arange(12000) / 8000
    soundfile.write(root / "8k.wav", 0.4 * np.sin(2 * np.pi * 300 * t8) * np.sin(2 * np.pi * 2 * t8), 8000, subtype="PCM_16")
    t44 = np.arange(int(1.3 * 44100)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t44), 0.3 * np.sin(2 * np.pi * 1330 * t44 + 1)], axis=1)
    soundfile.write(root / "44k_stereo.wav", stereo, 44100, subtype="PCM_16")
    return root


def test_mel_equals_librosa_on_real_speech():
    wav, _ = librosa_load(TALK)
    assert np.array_equal(load_speech(TALK), wav)
    magnitude = np.abs(librosa_stft(preemphasis(wav), n_fft=800, hop_length=200))
    mel = np.dot(librosa_mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600), magnitude)
    expected = np.clip(8 * (20 * np.log10(np.maximum(1e-5, mel)) - 20 + 100) / 100 - 4, -4, 4).T
    ours = log_mel_spectrogram(wav)
    assert ours.shape == expected.shape == (len(wav) // 200 + 1, 80)
    assert np.abs(ours - expected).max() <= 1e-4


def test_features_from_real_speech_equal_the_transcription(encoder_path):
    ours = AudioEncoder(encoder_path, device="cpu").features_from_audio(TALK)
    expected, mel = naive_ave_features(str(TALK), torch.load(encoder_path))
    n = int((mel.shape[0] - 16) / 80 * 25) + 2
    assert ours.shape == expected.shape == (n + 2, 512) and ours.dtype == np.float32
    assert np.abs(ours - expected).max() <= 1e-4
    assert np.array_equal(ours[0], ours[1]) and np.array_equal(ours[-1], ours[-2])


@pytest.mark.parametrize("name", ["silence.wav", "tone.wav", "8k.wav", "44k_stereo.wav"])
def test_features_from_generated_signals(encoder_path, signals, name):
    ours = AudioEncoder(encoder_path, device="cpu").features_from_audio(signals / name)
    expected, _ = naive_ave_features(str(signals / name), torch.load(encoder_path))
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() <= 1e-4


def test_flac_decodes_like_the_wav(encoder_path, signals, tmp_path):
    flac = tmp_path / "tone.flac"
    subprocess.run([ffmpeg_executable(), "-v", "error", "-i", str(signals / "tone.wav"), str(flac)], check=True)
    encoder = AudioEncoder(encoder_path, device="cpu")
    assert np.abs(encoder.features_from_audio(flac) - encoder.features_from_audio(signals / "tone.wav")).max() <= 1e-6


def test_too_short_audio_is_refused(encoder_path, tmp_path):
    soundfile.write(tmp_path / "blip.wav", np.zeros(2000, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="blip.wav: too short: 11 mel frames .* at least 16"):
        AudioEncoder(encoder_path, device="cpu").features_from_audio(tmp_path / "blip.wav")


@pytest.mark.parametrize("prefix", ["module.", "audio_encoder."])
def test_prefixed_encoder_checkpoints_load(tmp_path, prefix, encoder_path):
    path = synthetic.save_random_audio_encoder(tmp_path / "enc.pth", seed=2, prefix=prefix)
    a = AudioEncoder(path, device="cpu").network.state_dict()
    b = AudioEncoder(encoder_path, device="cpu").network.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_a_unet_checkpoint_is_not_an_encoder(checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="holds a SyncTalk_2D U-Net, not the ave audio encoder: .* look swapped"):
        AudioEncoder(checkpoints["ave"], device="cpu")
    synthetic.save_random_audio_encoder(tmp_path / "odd.pth", seed=2)
    state = torch.load(tmp_path / "odd.pth")
    torch.save({k: v for k, v in state.items() if not k.startswith("12.")}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="not an ave audio encoder checkpoint: .* keys missing"):
        AudioEncoder(tmp_path / "odd.pth", device="cpu")


def test_features_and_video_commands_from_a_wav(encoder_path, checkpoints, templates_640, tmp_path, speech):
    wav = speech["half"]
    assert main(["features", "--quiet", "--audio-encoder", str(encoder_path), "--audio", str(wav), "--output", str(tmp_path / "f.npy")]) == 0
    count = np.load(tmp_path / "f.npy").shape[0]
    assert count == int((41 - 16) / 80 * 25) + 2 + 2
    assert main(["video", "--quiet", "--checkpoint", str(checkpoints["ave"]), "--template-dir", str(templates_640),
                 "--audio-encoder", str(encoder_path), "--audio", str(wav), "--output", str(tmp_path / "v.mp4"),
                 "--preset", "ultrafast"]) == 0
    with av.open(str(tmp_path / "v.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == count


@pytest.mark.parametrize(
    "extra, message",
    [([], "no audio features: give a feature file"), (["--mode", "wenet", "--audio-encoder", "ENC"], "computes ave features")],
)
def test_video_without_features_needs_an_encoder_and_ave(encoder_path, checkpoints, templates_640, tmp_path, capsys, speech, extra, message):
    wav = speech["half"]
    extra = [str(encoder_path) if x == "ENC" else x for x in extra]
    checkpoint = checkpoints["wenet" if "wenet" in extra else "ave"]
    status = main(["video", "--quiet", "--checkpoint", str(checkpoint), "--template-dir", str(templates_640),
                   "--audio", str(wav), "--output", str(tmp_path / "v.mp4"), *extra])
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "v.mp4").exists()


def test_features_go_to_exactly_the_named_file(encoder_path, speech, tmp_path):
    assert main(["features", "--quiet", "--audio-encoder", str(encoder_path), "--audio", str(speech["half"]),
                 "--output", str(tmp_path / "feats.npy")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats.npy"], "no hidden or renamed file"
    assert np.load(tmp_path / "feats.npy").shape == (11, 512)


def test_bin_features_for_ports_round_trip(encoder_path, speech, checkpoints, templates_640, tmp_path):
    import json
    import struct

    common = ["--quiet", "--audio-encoder", str(encoder_path), "--audio", str(speech["half"])]
    assert main(["features", *common, "--output", str(tmp_path / "f.npy")]) == 0
    assert main(["features", *common, "--format", "bin", "--output", str(tmp_path / "f.bin")]) == 0
    description = json.loads((tmp_path / "f.bin.json").read_text())
    assert description["num_frames"] == 11 and description["feature_size"] == 512 and description["shape"] == [11, 512]
    raw = (tmp_path / "f.bin").read_bytes()
    values = struct.unpack(f"<{len(raw) // 4}f", raw)  # an independent reader: little-endian float32 rows
    independent = np.array(values, dtype=np.float32).reshape(description["shape"])
    assert np.array_equal(independent, np.load(tmp_path / "f.npy"))
    assert np.array_equal(read_feature_array(tmp_path / "f.bin"), independent)
    frames = {}
    for name in ("f.npy", "f.bin"):
        assert main(["frames", "--quiet", "--exact", "--checkpoint", str(checkpoints["ave"]), "--template-dir",
                     str(templates_640), "--audio-features", str(tmp_path / name), "--max-frames", "2",
                     "--output-dir", str(tmp_path / f"out-{name}")]) == 0
        frames[name] = [p.read_bytes() for p in sorted((tmp_path / f"out-{name}").glob("*.png"))]
    assert len(frames["f.bin"]) == 2 and frames["f.bin"] == frames["f.npy"]


def test_a_file_decoded_as_a_stream_gives_the_samples_of_the_whole_decode(tmp_path):
    from frame_generation_pipeline.audio.speech import stream_speech

    mp3 = tmp_path / "talk.mp3"  # 44.1 kHz stereo: resampled and mixed as a stream
    subprocess.run([ffmpeg_executable(), "-loglevel", "error", "-i", str(TALK), "-ar", "44100", "-ac", "2", str(mp3)], check=True)
    for path in (TALK, mp3):
        chunks = list(stream_speech(path, seconds=1.0))
        assert all(len(chunk) <= 16000 * 1.05 for chunk in chunks) and len(chunks) >= 6, [len(c) for c in chunks]
        whole = load_speech(path)
        streamed = np.concatenate(chunks)
        assert len(streamed) == len(whole) and np.abs(streamed - whole).max() < 1e-4
    with pytest.raises(AudioError, match="holds no samples"):
        empty = tmp_path / "empty.wav"
        soundfile.write(empty, np.zeros(0, np.float32), 16000)
        list(stream_speech(empty))


def test_a_file_is_said_in_two_parts_cut_in_a_pause_or_whole():
    pytest.importorskip("aiohttp")
    from frame_generation_pipeline.app.serve.speech_routes import file_parts

    speech = load_speech(TALK)  # a silent second in the middle (2.3-3.3 s)
    chunks = [speech[i : i + 16000] for i in range(0, len(speech), 16000)]
    whole = list(file_parts(iter(chunks), split=False))
    assert len(whole) == 1 and np.array_equal(whole[0], speech)
    first, rest = file_parts(iter(chunks[:2] + [speech[32000:40000]]), split=True)  # 2.5 s: the cut within 1-2 s
    assert 16000 <= len(first) < 32000 and np.array_equal(np.concatenate([first, rest]), speech[:40000])
    frames = speech[16000:32000].reshape(-1, 320)
    assert np.mean(speech[len(first) : len(first) + 320] ** 2) == np.min(np.mean(frames**2, axis=1)), "at the quietest 20 ms"
    loud = np.random.default_rng(0).uniform(-0.5, 0.5, 32100).astype(np.float32)
    loud[31680:32000] = 0  # the quietest 20 ms: the cut leaves 420 samples after it
    first, rest = file_parts(iter([loud[:32000], loud[32000:]]), split=True)
    assert len(first) == 31680 and len(rest) == 3200, "a last part under 0.2 s is padded to what a session takes"
