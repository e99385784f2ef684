"""Live pacing on a fake clock: known-length speech delayed so playback never stalls, open speech
dropping what cannot be on time, half rate below real time, and what the session reports."""

from __future__ import annotations

import bisect
import re
import threading

import numpy as np
import pytest

from frame_generation_pipeline.app.live.simulate import report as live_report
from frame_generation_pipeline.live.pacing import MAX_CATCH_UP_SECONDS, RenderRate, catch_up_wait
from frame_generation_pipeline.live.session import StreamingSession
from frame_generation_pipeline.live.slot import FPS
from frame_generation_pipeline.live.stats import SessionStats, UtteranceReport
from frame_generation_pipeline.models.ave_stream import LOOKAHEAD_SECONDS

from .live_helpers import FakeClock, Recorder, SlowEncoder, drive, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory, encoder_path):
    """The live tests' templates, speech and encoder."""
    return make_world(tmp_path_factory.mktemp("live"), encoder_path)


def test_known_length_speech_is_delayed_so_playback_never_stalls(world):
    """Without slower rates (half_rate=False) known-length speech waits for every frame to be on time."""
    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.1)  # 10 frames/s: 2.5x slower than real time
    encoder = SlowEncoder(world["encoder"], clock, 0.03)  # the whole clip is encoded before its first frame
    session = StreamingSession(model, world["templates"], encoder, batch_size=2, realtime=True, clock=clock,
                               threaded=False, half_rate=False, idle="template")  # a rest thread's calls would move the fake clock
    started = session.due(0)
    session.say(world["speech"]["long"])
    session.close()
    slots = drive(session, clock)
    speech = [s for s in slots if s.kind != "idle"]
    report = session.stats.utterances[0]
    assert session.stats.dropped_frames == 0 and all(s.kind == "speech" for s in speech)
    frames = len(speech)
    encoding = (frames - 2) * 0.03  # one window per feature row but the first and last
    catch_up = encoding + frames * 0.1 - (frames - 1) / FPS
    assert report.start_delay_s >= catch_up, "the start waits until encoding and rendering cannot fall behind"
    assert report.start_delay_s <= catch_up + 0.3
    assert clock.now() - started == pytest.approx(slots[-1].slot / FPS, abs=0.2), "every slot shown at its time"



@pytest.mark.parametrize(("seconds_per_frame", "stride"), [(0.045, 1), (0.1, 3)])
def test_known_length_speech_waits_at_most_a_second_for_the_full_rate(world, seconds_per_frame, stride):
    """Where the full rate keeps up after a short wait (22 frames/s: under a second for this clip) every
    frame is rendered; where it would keep the speech waiting longer (10 frames/s: over 3 s) it is
    rendered at the slower rate the speed sustains (every third frame), starting right after its
    encoding, a batch and the margin, nothing dropped and the audio unbroken."""
    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=seconds_per_frame)
    encoder = SlowEncoder(world["encoder"], clock, 0.03)
    session = StreamingSession(model, world["templates"], encoder, batch_size=2, realtime=True, clock=clock,
                               threaded=False, idle="template")
    session.due(0)
    samples = world["speech"]["long"]
    session.say(samples)
    session.close()
    speech = [s for s in drive(session, clock) if s.kind != "idle"]
    report = session.stats.utterances[0]
    full_rate_wait = catch_up_wait(len(speech), RenderRate(seconds_per_frame, 2 * seconds_per_frame, 0.03),
                                   session.margin, 2)
    assert (full_rate_wait > MAX_CATCH_UP_SECONDS) == (stride > 1), f"the full rate would wait {full_rate_wait:.2f} s"
    assert report.stride == stride and report.dropped == 0 and all(s.kind == "speech" for s in speech)
    assert report.repeated == sum(s.repeated for s in speech) == len(speech) - len(range(0, len(speech), stride))
    encoding = (len(speech) - 2) * 0.03
    assert report.start_delay_s <= encoding + 2 * seconds_per_frame + session.margin + MAX_CATCH_UP_SECONDS + 1 / FPS
    heard = np.concatenate([s.audio for s in speech])
    assert np.array_equal(heard[: len(samples)], samples[: len(heard)]), "the audio of every slot, unbroken"

def test_open_ended_speech_drops_what_cannot_be_on_time_and_keeps_the_audio(world):
    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.1)
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=1, realtime=True, clock=clock,
                               threaded=False, half_rate=False, idle="template")
    session.due(0)
    samples = world["speech"]["long"]
    session.push_audio(samples)
    session.end_of_speech()
    session.close()
    slots = drive(session, clock)
    speech = [s for s in slots if s.kind != "idle"]
    dropped = [s for s in speech if s.kind == "dropped"]
    assert 0.4 * len(speech) < len(dropped) < 0.8 * len(speech), "about 60% cannot be rendered in time"
    assert session.stats.dropped_frames == len(dropped) and len(model.calls) <= len(speech) - len(dropped) + 3 + 1
    heard = np.concatenate([s.audio for s in speech])
    assert np.array_equal(heard[: len(samples)], samples[: len(heard)]), "audio plays on, frames dropped or not"
    assert [s.slot for s in slots] == list(range(len(slots)))
    report = session.stats.utterances[0]
    assert report.start_delay_s == pytest.approx(LOOKAHEAD_SECONDS + 0.1 + session.margin, abs=1 / FPS + 0.01)


def test_open_speech_below_real_time_renders_every_other_slot_each_shown_twice_with_the_audio_unbroken(world, caplog):
    import logging

    from frame_generation_pipeline.live.renderer import FULL_RATE_HEADROOM
    from frame_generation_pipeline.live.shared import WARM_UP_ROUNDS

    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.06)  # 16.7 frames/s: below real time, above half of it
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=1, realtime=True, clock=clock,
                               threaded=False, idle="template")
    session.due(0)
    samples = world["speech"]["long"]
    with caplog.at_level(logging.INFO, logger="frame_generation_pipeline"):
        for _ in range(2):  # two utterances: the half rate is said once
            session.push_audio(samples)
            session.end_of_speech()
        session.say(samples)  # known length: it waits for every frame instead (tested above)
        session.close()
        slots = drive(session, clock)
    said = [r.getMessage() for r in caplog.records if "every other slot" in r.getMessage()]
    assert len(said) == 1, said
    numbers = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?) ms", said[0])]
    frame, network, window, needed = numbers[0], numbers[1], numbers[3], numbers[4]
    assert network == 60.0 and frame == network + window > needed == round(1000 / FPS / FULL_RATE_HEADROOM, 1), \
        f"numbers that add up: {said[0]}"
    for number in (0, 1):
        speech = [s for s in slots if s.utterance == number]
        assert speech and all(s.kind == "speech" for s in speech), "nothing dropped at half rate"
        firsts, seconds = speech[0::2], speech[1::2]
        assert all(a.image is b.image and not a.repeated and b.repeated for a, b in zip(firsts, seconds)), \
            "every rendered image is shown twice, in its slot and the next"
        assert [s.frame for s in firsts] == list(range(0, len(speech), 2))
        assert len({id(s.image) for s in firsts}) == len(firsts), "each pair its own image"
        heard = np.concatenate([s.audio for s in speech])
        assert np.array_equal(heard[: len(samples)], samples[: len(heard)]), "the audio of every slot, unbroken"
        report = session.stats.utterances[number]
        assert report.half_rate and report.repeated == len(speech) // 2 and report.dropped == 0
    known = [s for s in slots if s.utterance == 2]
    assert not session.stats.utterances[2].half_rate and not any(s.repeated for s in known)
    warm_up = 1 + WARM_UP_ROUNDS  # batches of one
    assert len(model.calls) - warm_up == sum(s.utterance is not None and not s.repeated for s in slots), "half rendered"
    assert session.stats.repeated_frames == sum(s.repeated for s in slots)
    shown = live_report(session, True, "drop")
    assert shown["speech_images"] == len({id(s.image) for s in slots if s.kind == "speech"}) < shown["speech_frames"], \
        "the report says how many new pictures the speech slots showed"


class SlowingDown(Recorder):
    """The fake network at `fast` seconds a frame for its first `calls` frames, then at `slow` (the
    machine taken by something else meanwhile, such as an encoder)."""

    def __init__(self, clock, fast, slow, calls):
        super().__init__(clock, fast)
        self.slow, self.after = slow, calls

    def run(self, images, audio):
        if len(self.calls) >= self.after:
            self.seconds_per_frame = self.slow
        return super().run(images, audio)


@pytest.mark.parametrize(("slow", "stride"), [(0.06, 2), (0.1, 3), (0.06, 1)])
def test_open_speech_that_falls_behind_real_time_goes_on_at_a_slower_rate_instead_of_dropping(world, slow, stride):
    from frame_generation_pipeline.live.shared import WARM_UP_ROUNDS

    clock = FakeClock()
    slow_from = 1 + WARM_UP_ROUNDS + 20  # the warm-up's calls, then 20 frames at full speed
    model = SlowingDown(clock, fast=0.02, slow=slow, calls=slow_from)  # 50 frames/s, then 16.7 or 10
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=1, realtime=True, clock=clock,
                               threaded=False, half_rate=stride > 1, idle="template")
    session.due(0)
    samples = np.tile(world["speech"]["long"], 4)  # long enough to fall behind: its lookahead is soon spent
    session.push_audio(samples)
    session.end_of_speech()
    session.close()
    speech = [s for s in drive(session, clock) if s.utterance == 0]
    report = session.stats.utterances[0]
    assert not any(s.repeated for s in speech[:20]), "full rate while the machine keeps up"
    if stride == 1:  # half_rate=False: every slot, dropped when late
        assert not report.half_rate and report.dropped > len(speech) // 8, "without a slower rate it drops"
        return
    assert report.half_rate and report.stride == stride and 20 <= report.half_rate_from < 30, "slower soon after"
    after = speech[report.half_rate_from :]
    assert report.dropped <= 3 and all(s.kind == "speech" for s in after), "nothing dropped once slower"
    rendered = [i for i, s in enumerate(after) if not s.repeated]
    gaps = [b - a for a, b in zip(rendered, rendered[1:])]
    assert gaps == sorted(gaps) and set(gaps) <= set(range(2, stride + 1)) and gaps[-1] == stride, \
        f"slower and slower, never back, down to every {stride}th slot: {gaps}"
    assert all(s.image is after[rendered[bisect.bisect_right(rendered, i) - 1]].image for i, s in enumerate(after)), \
        "each rendered image shown in the slots up to the next"
    heard = np.concatenate([s.audio for s in speech])
    assert np.array_equal(heard[: len(samples)], samples[: len(heard)]), "the audio of every slot, unbroken"


def test_open_speech_behind_after_a_stall_goes_on_slower_and_the_next_utterance_at_full_rate(world):
    from frame_generation_pipeline.live.renderer import FULL_RATE_HEADROOM

    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.02)
    assert model.seconds_per_frame * FPS * FULL_RATE_HEADROOM <= 1, "the measure alone keeps full rate"
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=1, realtime=True, clock=clock,
                               threaded=False, idle="template")
    inputs, calls = session.live.network_inputs, []

    def stalling(templates):  # a one-off stall outside the network's measured time (a template read, say)
        calls.append(1)
        if len(calls) == 30:
            clock.sleep(2.0)  # longer than the lead the renderer has built by then
        return inputs(templates)

    session.live.network_inputs = stalling
    session.due(0)
    samples = np.tile(world["speech"]["long"], 2)
    for _ in range(2):
        session.push_audio(samples)
        session.end_of_speech()
    session.close()
    slots = drive(session, clock)
    first, second = session.stats.utterances[0], session.stats.utterances[1]
    assert first.dropped > 0 and first.stride == 2 and first.half_rate_from > 0, f"late frames, then half rate: {first}"
    after = [s for s in slots if s.utterance == 0][first.half_rate_from + 2 :]
    assert after and all(s.kind == "speech" for s in after), "nothing dropped once at half rate"
    assert second.stride == 1 and second.dropped == 0 and not second.half_rate, f"placed from the measure: {second}"


def test_the_first_frame_latency_is_the_first_utterances_that_showed_a_frame():
    stats = SessionStats()
    assert stats.first_frame_latency_s is None
    stats.utterances.extend([UtteranceReport(0, "drop", 0, 0.5), UtteranceReport(1, "drop", 30, 0.5, first_frame_latency_s=0.7),
                             UtteranceReport(2, "delay", 60, 0.9, first_frame_latency_s=0.4)])
    assert stats.first_frame_latency_s == 0.7


class ColdFirstCalls(Recorder):
    """A network whose first call at each batch size on each thread takes `cold` seconds more, as
    an OpenVINO infer request's first inference or kernels made for a new shape do."""

    def __init__(self, clock, seconds_per_frame, cold):
        super().__init__(clock, seconds_per_frame)
        self.cold, self.seen, self.threads = cold, set(), set()

    def run(self, images, audio):
        key = (threading.current_thread().name, len(images))
        self.threads.add(key[0])
        if key not in self.seen:
            self.seen.add(key)
            self.clock.sleep(self.cold)
        return super().run(images, audio)


def test_a_session_is_warm_before_its_first_reply(world):
    """Fails on the code before the warm-up ran every batch size on the model's own threads: the
    first reply's last batch (1 frame) paid the cold call and was dropped, and the next was planned slower."""
    clock = FakeClock()
    model = ColdFirstCalls(clock, seconds_per_frame=0.02, cold=1.0)
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=2, realtime=True, clock=clock,
                               threaded=False, idle="template")  # a rest thread's calls would move the fake clock
    session.due(0)
    for _ in range(2):  # two replies of 9 frames (batches of 2, 2, 2, 2 and 1), each heard out before the next
        session.push_audio(world["speech"]["b"])
        session.end_of_speech()
        for _ in range(2 * FPS):
            if clock.now() < session.due(session.next_slot) and session.work():
                continue
            session.next_frame()
    first, later = session.stats.utterances
    assert first.start_delay_s == pytest.approx(later.start_delay_s, abs=1e-9) and first.frames == later.frames == 9, \
        (first, later)
    assert first.first_frame_latency_s == pytest.approx(later.first_frame_latency_s)
    assert all(name.startswith("live-network") for name in model.threads), "every batch on the model's own threads"
