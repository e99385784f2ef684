"""Live hubert: a known-length utterance gives the offline frames, open speech is encoded in
windows whose rows stay within the measured bound of the offline rows, for any chunking."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frame_generation_pipeline import FrameGenerator, TemplateSet
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.contract import get_mode
from frame_generation_pipeline.errors import StreamError
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.live.session import StreamingSession
from frame_generation_pipeline.models.hubert import HubertEncoder, HubertStream, HubertWindows
from frame_generation_pipeline.models.silence import run_on
from frame_generation_pipeline.render.blend import FEATHER

from .helpers import cli_status
from .live_helpers import Recorder

#: The tiny model's measured row differences with the default windows on this speech (0.162, 0.0122)
#: (benchmarks/hubert.py measures a real model; docs/live.md), with room for other CPUs' rounding.
OPEN_SPEECH_BOUND = {"max": 0.2, "mean": 0.015}


class HubertRecorder(Recorder):
    mode = get_mode("hubert")


@pytest.fixture(scope="module")
def world(tmp_path_factory, hubert_model):
    root = tmp_path_factory.mktemp("live-hubert")
    templates = TemplateSet.from_folder(synthetic.make_templates(root / "tpl", 5, 200, 160, parsing=False))
    speech = load_speech(write_speech_like_wav(root / "a.wav", 1.3, seed=5))
    return {"templates": templates, "encoder": HubertEncoder(hubert_model, device="cpu"), "speech": speech}


def _push(stream, samples, chunk):
    rng, first = np.random.default_rng(3), 0
    while first < len(samples):
        size = int(rng.integers(1, 4000)) if chunk == "random" else chunk
        stream.push(samples[first : first + size])
        first += size
    stream.finish()


def test_a_known_length_utterance_gives_the_offline_frames(world):
    samples = world["speech"]
    offline_model, live_model = HubertRecorder(), HubertRecorder()
    after = run_on(world["encoder"], len(samples))  # the speech runs on into silence: offline, the same silence follows it
    features = AudioFeatures(world["encoder"].features_from_samples(np.concatenate([samples, np.zeros(after.silence, np.float32)])),
                             "hubert")
    expected = list(FrameGenerator(offline_model).iter_frames(world["templates"], features, frame_count=after.frames,
                                                              blend=FEATHER))
    session = StreamingSession(live_model, world["templates"], world["encoder"], batch_size=2)
    session.say(samples)
    session.close()
    slots = list(session)
    assert [s.kind for s in slots] == ["speech"] * after.frames and after.frames > 32 == world["encoder"].frame_count(len(samples))
    for (live_image, live_audio), (image, audio) in zip(live_model.calls, offline_model.calls, strict=True):
        assert np.array_equal(live_image, image) and np.array_equal(live_audio, audio)
    for slot, frame in zip(slots, expected):
        assert np.array_equal(slot.image, frame)


@pytest.mark.parametrize("chunk", [1, 320, "random"])
def test_known_length_streams_equal_offline_for_any_chunking(world, chunk):
    samples = world["speech"]
    stream = HubertStream(world["encoder"], known_length=True)
    if chunk == 1:  # one sample at a time is slow in Python: a shorter utterance
        samples = samples[:4000]
    features = AudioFeatures(world["encoder"].features_from_samples(samples), "hubert")
    _push(stream, samples, chunk)
    assert stream.count == len(features)
    for i in range(len(features)):
        assert np.array_equal(stream.window(i), features.window(i))


def test_open_speech_is_within_the_measured_bound_for_any_chunking(world):
    samples = world["speech"]
    offline = world["encoder"].stages(samples).hidden
    rows = {}
    for chunk in (320, "random"):
        stream = HubertStream(world["encoder"], known_length=False)
        _push(stream, samples, chunk)
        rows[chunk] = stream.held_rows()
    assert np.array_equal(rows[320], rows["random"]), "windows depend on rows, not on how speech arrived"
    difference = np.abs(rows[320] - offline)
    assert difference.max() <= OPEN_SPEECH_BOUND["max"] and difference.mean() <= OPEN_SPEECH_BOUND["mean"]
    assert difference.max() > 0, "windows do read less than the whole utterance"


def test_open_speech_frames_wait_for_their_lookahead_and_no_longer(world):
    settings = HubertWindows(window=10, context=20, lookahead=5)
    stream = HubertStream(world["encoder"], known_length=False, windows=settings)
    waited = {}
    for first in range(0, 16000, 80):
        stream.push(world["speech"][first : first + 80])
        for frame in range(stream.rows // 2):
            if stream.ready(frame) and frame not in waited:
                waited[frame] = (first + 80 - frame * 640) / 16000
    assert len(waited) > 10
    assert max(waited.values()) <= settings.lookahead_seconds < max(waited.values()) + 0.021  # one row of 20 ms
    assert stream.extra_lookahead_seconds == pytest.approx(settings.lookahead_seconds - 0.45, abs=0.011)


def test_one_window_over_the_whole_utterance_is_the_offline_encoding(world):
    samples = world["speech"]
    stream = HubertStream(world["encoder"], known_length=False, windows=HubertWindows(window=10_000, context=0, lookahead=0))
    _push(stream, samples, 640)
    assert np.array_equal(stream.held_rows(), world["encoder"].stages(samples).hidden)


def test_a_hubert_model_needs_a_hubert_checkpoint(world):
    with pytest.raises(StreamError, match=r"needs a hubert checkpoint \(its features come from the hubert model\), this model is 'ave'"):
        StreamingSession(Recorder(), world["templates"], world["encoder"])


@pytest.mark.parametrize("policy", ["delay", "drop"])
def test_live_command_renders_a_hubert_checkpoint_from_speech(world, hubert_model, checkpoints, exports, tmp_path, policy):
    wav = write_speech_like_wav(tmp_path / "s.wav", 0.3)  # 4800 samples: 14 rows, 7 frames, 16 with its run into silence
    templates = tmp_path / "tpl"
    synthetic.make_templates(templates, 3, 200, 160, parsing=False)
    # the session's export (the template cache's graphs of hubert would be 8 CPU-s more)
    status = cli_status(["live", "--quiet", "--checkpoint", checkpoints["hubert"], "--onnx", exports["hubert"], "--template-dir", templates,
                         "--hubert-model", hubert_model, "--hubert-lookahead", "5", "--audio", wav, "--gap-seconds", "0",
                         "--policy", policy, "--output", tmp_path / "live.mp4", "--report", tmp_path / "r.json"])
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["speech_frames"] == 16 and report["dropped_frames"] == 0


def test_a_real_time_session_times_the_hubert_model_at_start(world):
    session = StreamingSession(HubertRecorder(), world["templates"], world["encoder"], realtime=True, threaded=False)
    assert session.rate.seconds_per_window > 0, "the encoder's cost per frame seeds the start delay"
    session.close(drain=False)
