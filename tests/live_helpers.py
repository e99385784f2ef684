"""What the live tests share: a recording stand-in for the network, a fake clock, a slow encoder,
their templates and speech, and drivers that run a session (or several) on one fake clock."""

from __future__ import annotations

import numpy as np

from frame_generation_pipeline import FrameGenerator, TemplateSet
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.contract import SAMPLE_RATE, get_mode
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.models.backends.base import InferenceModel
from frame_generation_pipeline.models.silence import run_on
from frame_generation_pipeline.render.blend import FEATHER


class Recorder(InferenceModel):
    """A deterministic stand-in for the network that records every input it is given."""

    mode, streams, name, precision = get_mode("ave"), 1, "recorder", "fp32"

    def __init__(self, clock=None, seconds_per_frame=0.0):
        self.calls, self.clock, self.seconds_per_frame = [], clock, seconds_per_frame

    def run(self, images, audio):
        self.calls.extend(zip(images.copy(), audio.copy()))
        if self.clock is not None:
            self.clock.sleep(self.seconds_per_frame * len(images))
        level = 1 / (1 + np.exp(-audio.reshape(len(audio), -1).mean(axis=1)))
        return (images[:, :3] * level[:, None, None, None]).astype(np.float32)


class FakeClock:
    """Time that passes only when someone sleeps (or a fake model computes)."""

    def __init__(self):
        self.time = 1000.0

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.time += max(seconds, 0.0)


class SlowEncoder(AudioEncoder):
    """The audio encoder, taking `seconds` of a fake clock per window."""

    def __init__(self, encoder, clock, seconds):  # wraps a loaded encoder: loads nothing itself
        self.encoder, self.clock, self.seconds = encoder, clock, seconds

    def encode_windows(self, windows):
        self.clock.sleep(self.seconds * len(windows))
        return self.encoder.encode_windows(windows)


def make_world(root, encoder_path):
    """Five small templates, three speech clips (a: 0.5 s, b: 0.4 s, long: 2 s) and the ave encoder."""
    templates = TemplateSet.from_folder(synthetic.make_templates(root / "tpl", 5, 200, 160, parsing=False))
    speech = {name: load_speech(write_speech_like_wav(root / f"{name}.wav", seconds, seed=seed))
              for name, seconds, seed in (("a", 0.5, 1), ("b", 0.4, 2), ("long", 2.0, 3))}
    return {"templates": templates, "encoder": AudioEncoder(encoder_path, device="cpu"), "speech": speech, "root": root}


def with_silence(samples, seconds=1.0):
    """`samples` followed by `seconds` of silence."""
    return np.concatenate([samples, np.zeros(int(seconds * SAMPLE_RATE), np.float32)])


def offline(world, samples, model, blend=FEATHER, tail=True):
    """The offline features of `samples` followed by a second of silence (`tail`; else of `samples`
    alone) and the frames `model` renders from them: as many as a live utterance of `samples` shows,
    pasted as a session pastes by default (feathered)."""
    speech = with_silence(samples) if tail else samples
    features = AudioFeatures(world["encoder"].features_from_samples(speech), "ave")
    count = run_on(world["encoder"], len(samples)).frames if tail else len(features)
    return features, list(FrameGenerator(model).iter_frames(world["templates"], features, frame_count=count, blend=blend))


def push(session, samples, chunk):
    """Push `samples` in chunks of `chunk` samples (or random sizes), then end the speech."""
    if chunk == "random":
        rng, first = np.random.default_rng(7), 0
        while first < len(samples):
            size = int(rng.integers(1, 4000))
            session.push_audio(samples[first : first + size])
            first += size
    else:
        for first in range(0, len(samples), chunk):
            session.push_audio(samples[first : first + chunk])
    session.end_of_speech()


def drive(session, clock):
    """Renderer and viewer on one fake clock: the renderer works while the next slot is not yet due."""
    slots = []
    while True:
        if clock.now() < session.due(session.next_slot) and session.work():
            continue
        if (frame := session.next_frame()) is None:
            return slots
        slots.append(frame)


def drive_together(sessions, clock):
    """Several sessions on one fake clock: a slot that is due is shown; else the session first in
    line renders one batch and goes to the back of the line (the model's fair turns)."""
    slots = {id(session): [] for session in sessions}
    line = list(sessions)

    def show(session):
        if (frame := session.next_frame()) is None:
            line.remove(session)
        else:
            slots[id(session)].append(frame)

    while line:
        due = [session for session in line if clock.now() >= session.due(session.next_slot)]
        if due:
            show(due[0])
            continue
        worker = next((session for session in line if session.work()), None)
        if worker is None:
            show(min(line, key=lambda session: session.due(session.next_slot)))
        else:
            line.remove(worker)
            line.append(worker)
    return [slots[id(session)] for session in sessions]
