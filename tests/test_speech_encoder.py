"""The speech-encoder interface (models/speech_encoder.py), for both audio models: the frame rule
matches the features, a stream gives the whole clip's rows, a file is described and loaded back."""

from __future__ import annotations

import numpy as np
import pytest

from frame_generation_pipeline.errors import AudioError
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.models.audio_models import AudioModels, describe_audio_model, described, load_audio_model
from frame_generation_pipeline.models.hubert import HubertEncoder
from frame_generation_pipeline.models.speech_encoder import SpeechEncoder

SAMPLES = 8000  # 0.5 s: a dozen ave windows, 12 hubert frames


@pytest.fixture(scope="module")
def encoders(encoder_path, hubert_model) -> dict[str, SpeechEncoder]:
    return {"ave": AudioEncoder(encoder_path, device="cpu"), "hubert": HubertEncoder(hubert_model, device="cpu")}


def _speech(samples: int = SAMPLES) -> np.ndarray:
    t = np.arange(samples) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("mode, cls, first_channel", [("ave", AudioEncoder, False), ("hubert", HubertEncoder, True)])
def test_each_audio_model_is_a_speech_encoder_of_its_mode(encoders, mode, cls, first_channel):
    encoder = encoders[mode]
    assert isinstance(encoder, SpeechEncoder) and isinstance(encoder, cls)
    assert (encoder.mode.name, encoder.fps, encoder.first_channel) == (mode, 25, first_channel)


@pytest.mark.parametrize("mode, samples", [("ave", SAMPLES), ("ave", SAMPLES + 123), ("hubert", SAMPLES), ("hubert", 8400)])
def test_the_frame_rule_counts_the_features_the_clip_gives(encoders, mode, samples):
    encoder = encoders[mode]
    features = encoder.features_from_samples(_speech(samples))
    assert encoder.frame_count(samples) == len(features) > 0
    assert features.shape[1:] == {"ave": (512,), "hubert": (2, 1024)}[mode]


@pytest.mark.parametrize("mode", ["ave", "hubert"])
def test_speech_too_short_for_one_frame_is_refused_by_name(encoders, mode):
    with pytest.raises(AudioError, match="<tts>"):
        encoders[mode].frame_count(1000, "<tts>")


@pytest.mark.parametrize("mode", ["ave", "hubert"])
def test_a_stream_of_known_length_speech_gives_the_whole_clips_windows(encoders, mode):
    encoder, speech = encoders[mode], _speech()
    offline = AudioFeatures(encoder.features_from_samples(speech), mode)
    stream = encoder.stream(known_length=True)
    for start in range(0, SAMPLES, 1234):  # pieces that cut windows and rows anywhere
        stream.push(speech[start : start + 1234])
    stream.finish()
    assert stream.count == len(offline) == encoder.frame_count(SAMPLES)
    assert all(stream.ready(i) for i in range(len(offline))) and not stream.ready(len(offline))
    for i in range(len(offline)):
        assert np.array_equal(stream.window(i), offline.window(i)), f"frame {i}"


@pytest.mark.parametrize("mode, frames", [("ave", 1), ("hubert", 25)])
def test_warm_up_encodes_silence_and_says_how_many_frames_it_stood_for(encoders, mode, frames):
    assert encoders[mode].warm_up() == frames


def test_a_file_is_described_and_loaded_back_and_a_loaded_model_is_kept(encoders, encoder_path, hubert_model):
    for mode, model in (("ave", describe_audio_model(encoder_path)), ("hubert", describe_audio_model(None, hubert_model))):
        assert model is not None and described(encoders[mode]) == model
        assert type(load_audio_model(model, "cpu")) is type(encoders[mode])
    models = AudioModels("cpu")
    model = models.describe(None, encoders["hubert"])
    assert model == described(encoders["hubert"]) and models.get(model) is encoders["hubert"]
