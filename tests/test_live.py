"""The live engine: streamed speech gives the offline frames for every chunking, the schedule runs on
through idle time, the pacing policies on a fake clock, bounded state, and refusals."""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pytest

from frame_generation_pipeline import FrameGenerationPipeline, FrameGenerator, TemplateSet
from frame_generation_pipeline.app.demo import synthetic
from frame_generation_pipeline.app.demo.speech import write_speech_like_wav
from frame_generation_pipeline.audio.speech import load_speech
from frame_generation_pipeline.contract import SAMPLE_RATE, get_mode
from frame_generation_pipeline.errors import CheckpointError, StreamError
from frame_generation_pipeline.files import MANIFEST
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.inputs.templates import ping_pong_schedule
from frame_generation_pipeline.live.session import StreamingSession
from frame_generation_pipeline.live.timeline import FPS, LOOKAHEAD_SECONDS, SLOT_SAMPLES, SessionStats, UtteranceReport
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.render.blend import Blend
from frame_generation_pipeline.render.prepared import compose, prepare

from .helpers import cli_status


class Recorder:
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


def _drive(session, clock):
    """Renderer and viewer on one fake clock: the renderer works while the next slot is not yet due."""
    slots = []
    while True:
        if clock.now() < session.due(session.next_slot) and session.work():
            continue
        if (frame := session.next_frame()) is None:
            return slots
        slots.append(frame)


class FakeClock:
    """Time that passes only when someone sleeps (or a fake model computes)."""

    def __init__(self):
        self.time = 1000.0

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.time += max(seconds, 0.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory, encoder_path):
    root = tmp_path_factory.mktemp("live")
    templates = TemplateSet.from_folder(synthetic.make_templates(root / "tpl", 5, 200, 160, parsing=False))
    speech = {name: load_speech(write_speech_like_wav(root / f"{name}.wav", seconds, seed=seed))
              for name, seconds, seed in (("a", 0.5, 1), ("b", 0.4, 2), ("long", 2.0, 3))}
    return {"templates": templates, "encoder": AudioEncoder(encoder_path, device="cpu"), "speech": speech, "root": root}


def _offline(world, samples, model):
    features = AudioFeatures(world["encoder"].features_from_samples(samples), "ave")
    return features, list(FrameGenerator(model).iter_frames(world["templates"], features))


def _push(session, samples, chunk):
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


@pytest.mark.parametrize("chunk", [1, 320, 16000, "random"])
def test_streamed_speech_gives_the_offline_frames_for_every_chunking(world, chunk):
    samples = world["speech"]["a"]
    offline_model, live_model = Recorder(), Recorder()
    features, expected = _offline(world, samples, offline_model)
    session = StreamingSession(live_model, world["templates"], world["encoder"], batch_size=3)
    _push(session, samples, chunk)
    session.close()
    slots = list(session)
    assert [s.kind for s in slots] == ["speech"] * len(features) and [s.frame for s in slots] == list(range(len(features)))
    assert len(live_model.calls) == len(offline_model.calls) == len(features)
    for (live_image, live_audio), (image, audio) in zip(live_model.calls, offline_model.calls):
        assert np.array_equal(live_image, image) and np.array_equal(live_audio, audio)
    for slot, frame in zip(slots, expected):
        assert np.array_equal(slot.image, frame)
    heard = np.concatenate([s.audio for s in slots])
    assert len(heard) == len(features) * SLOT_SAMPLES
    expected = np.zeros_like(heard)
    expected[: min(len(heard), len(samples))] = samples[: len(heard)]
    assert np.array_equal(heard, expected), "the speech as heard: cut or padded to the frames, as offline"
    assert [s.pts for s in slots[:3]] == [0.0, 1 / FPS, 2 / FPS]


def test_the_exact_backend_streams_the_offline_video_bit_for_bit(world, checkpoints, encoder_path, tmp_path):
    samples = world["speech"]["b"]
    wav = tmp_path / "b.wav"
    import soundfile

    soundfile.write(wav, samples, 16000, subtype="FLOAT")
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch")
    offline = list(pipeline.generator.iter_frames(world["templates"], pipeline.features(audio=wav, audio_encoder=encoder_path)))
    session = StreamingSession.from_pipeline(pipeline, world["templates"], world["encoder"])
    _push(session, samples, 320)
    session.close()
    frames = [slot.image for slot in session]
    assert len(frames) == len(offline) > 0 and all(np.array_equal(a, b) for a, b in zip(frames, offline))


@pytest.mark.parametrize("gap", [7, 0])
def test_two_utterances_with_an_idle_gap_continue_the_schedule(world, gap):
    model = Recorder()
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=2)
    session.say(world["speech"]["a"])
    session.idle(gap)
    session.say(world["speech"]["b"])
    session.close()
    slots = list(session)
    first, second = (len(AudioFeatures(world["encoder"].features_from_samples(world["speech"][k]), "ave")) for k in "ab")
    assert [s.kind for s in slots] == ["speech"] * first + ["idle"] * gap + ["speech"] * second
    assert [s.slot for s in slots] == list(range(len(slots)))
    assert [s.template for s in slots] == ping_pong_schedule(len(slots), 5), "no jump in the schedule"
    for slot in slots:
        template = world["templates"].load(slot.template)
        if slot.kind == "idle":
            assert np.array_equal(slot.image, template.image) and not slot.audio.any()
    _, expected_b = zip(*model.calls[first:])
    features_b = AudioFeatures(world["encoder"].features_from_samples(world["speech"]["b"]), "ave")
    assert all(np.array_equal(a, features_b.window(i)) for i, a in enumerate(expected_b))
    second_slots = slots[first + gap :]
    outputs = model.run(np.stack([prepare(world["templates"].load(s.template)).network_input for s in second_slots]),
                        features_b.windows(range(second)))
    for slot, output in zip(second_slots, outputs):
        assert np.array_equal(slot.image, compose(prepare(world["templates"].load(slot.template)), output))


def test_idle_only_shows_the_templates_in_schedule_order(world):
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    session.idle(12)
    session.close()
    slots = list(session)
    assert [s.kind for s in slots] == ["idle"] * 12 and [s.template for s in slots] == ping_pong_schedule(12, 5)
    assert session.stats.idle_frames == 12 and session.stats.speech_frames == 0


def test_the_last_frames_wait_for_the_end_of_speech(world):
    samples = world["speech"]["a"]
    count = len(world["encoder"].features_from_samples(samples))
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    session.push_audio(samples)
    early = []
    while (slot := session.next_frame(timeout=0.2)) is not None:
        early.append(slot)
    assert 0 < len(early) < count, "frames whose window is complete come out before the end"
    session.end_of_speech()
    session.close()
    assert len(early) + len(list(session)) == count


class SlowEncoder(AudioEncoder):
    """The audio encoder, taking `seconds` of a fake clock per window."""

    def __init__(self, encoder, clock, seconds):  # wraps a loaded encoder: loads nothing itself
        self.encoder, self.clock, self.seconds = encoder, clock, seconds

    def encode_windows(self, windows):
        self.clock.sleep(self.seconds * len(windows))
        return self.encoder.encode_windows(windows)


def test_known_length_speech_is_delayed_so_playback_never_stalls(world):
    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.1)  # 10 frames/s: 2.5x slower than real time
    encoder = SlowEncoder(world["encoder"], clock, 0.03)  # the whole clip is encoded before its first frame
    session = StreamingSession(model, world["templates"], encoder, batch_size=2, realtime=True, clock=clock,
                               threaded=False)
    started = session.due(0)
    session.say(world["speech"]["long"])
    session.close()
    slots = _drive(session, clock)
    speech = [s for s in slots if s.kind != "idle"]
    report = session.stats.utterances[0]
    assert session.stats.dropped_frames == 0 and all(s.kind == "speech" for s in speech)
    frames = len(speech)
    encoding = (frames - 2) * 0.03  # one window per feature row but the first and last
    catch_up = encoding + frames * 0.1 - (frames - 1) / FPS
    assert report.start_delay_s >= catch_up, "the start waits until encoding and rendering cannot fall behind"
    assert report.start_delay_s <= catch_up + 0.3
    assert clock.now() - started == pytest.approx(slots[-1].slot / FPS, abs=0.2), "every slot shown at its time"


def test_open_ended_speech_drops_what_cannot_be_on_time_and_keeps_the_audio(world):
    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.1)
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=1, realtime=True, clock=clock,
                               threaded=False, half_rate=False)
    session.due(0)
    samples = world["speech"]["long"]
    session.push_audio(samples)
    session.end_of_speech()
    session.close()
    slots = _drive(session, clock)
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

    from frame_generation_pipeline.live.shared import WARM_UP_ROUNDS

    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.06)  # 16.7 frames/s: below real time, above half of it
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=1, realtime=True, clock=clock,
                               threaded=False)
    session.due(0)
    samples = world["speech"]["long"]
    with caplog.at_level(logging.INFO, logger="frame_generation_pipeline"):
        for _ in range(2):  # two utterances: the half rate is said once
            session.push_audio(samples)
            session.end_of_speech()
        session.say(samples)  # known length: it waits for every frame instead (tested above)
        session.close()
        slots = _drive(session, clock)
    said = [r for r in caplog.records if "every other slot" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
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


def test_state_stays_bounded_over_a_simulated_hour(world):
    class Zeros(AudioEncoder):  # encoder and network stand-ins: state, not arithmetic, is measured here
        mode, streams = get_mode("ave"), 1

        def __init__(self):  # loads nothing
            pass

        def encode_windows(self, windows):
            return np.zeros((len(windows), 512), np.float32)

        def run(self, images, audio):
            return np.zeros((len(images), 3, 320, 320), np.float32)

    session = StreamingSession(Zeros(), world["templates"], Zeros(), batch_size=4)
    sizes, in_flight = [], []
    for _minute in range(60):  # an hour: a 2 s utterance and 58 s of idle each minute
        session.say(world["speech"]["long"])
        for _slot in range(FPS):  # a second into the utterance: its speech, features and frames are held now
            assert session.next_frame(timeout=0) is not None
        sizes.append(session.state_bytes())
        in_flight.append(sizes[-1] - session.live.cache.nbytes)
        session.idle(58 * FPS)
        while session.next_frame(timeout=0) is not None:  # the rest of the minute
            pass
    assert session.stats.slots == 60 * (58 * FPS + 49) and session.stats.speech_frames == 60 * 49
    assert min(in_flight) >= SAMPLE_RATE * 4, "measured under way: at least the unplayed second of speech (float32)"
    assert max(sizes[5:]) <= max(sizes[:5]), f"state grew: {sizes}"
    assert max(sizes) <= 64 << 20, "the prepared-template cache's budget bounds it"
    assert session.state_bytes() == session.live.cache.nbytes, "nothing held once every slot was played"


def test_memory_is_counted_while_the_render_thread_adds_frames():
    from frame_generation_pipeline.live.utterance import Utterance

    class NoFeatures:
        def state_bytes(self):
            return 0

    utterance, pixels, threads = Utterance(0, "drop", 0.0, NoFeatures()), np.zeros((320, 320, 3), np.uint8), []

    class Rendered(dict):  # the render thread finishes a frame while the frames are being counted
        def values(self):
            for value in super().values():
                if not threads:
                    threads.append(threading.Thread(target=utterance.finished, args=(1, pixels, 0.0)))
                    threads[0].start()
                    threads[0].join(0.1)  # blocked until the count is done, or (the race) in at once
                yield value

    utterance._rendered = Rendered({0: (pixels, 0.0)})
    assert utterance.state_bytes() == pixels.nbytes
    threads[0].join()
    assert utterance.state_bytes() == 2 * pixels.nbytes


@pytest.mark.parametrize(
    "samples, rate, message",
    [(np.zeros(320, np.float32), 44100, "expected 16000 Hz samples, got 44100 Hz"),
     (np.zeros(320, np.float64), 16000, "expected float32 samples in \\[-1, 1\\] or int16, got float64"),
     (np.zeros((320, 2), np.float32), 16000, "expected mono samples \\(a 1-D array\\), got shape \\(320, 2\\)"),
     (np.array([0.1, np.nan], np.float32), 16000, "samples hold NaN or infinite values \\(first at 1\\)")],
)
def test_bad_audio_is_refused_and_the_session_stays_usable(world, samples, rate, message):
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    with pytest.raises(StreamError, match=message):
        session.push_audio(samples, sample_rate=rate)
    session.push_audio((world["speech"]["b"] * 32767).astype(np.int16))
    session.close()
    assert session.stats.slots == 0 and len(list(session)) == 9


def test_pushing_after_close_and_models_of_the_wrong_kind_are_refused(world, checkpoints):
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    session.close()
    with pytest.raises(StreamError, match="the session is closed"):
        session.push_audio(np.zeros(10, np.float32))

    class Hubert(Recorder):
        mode = get_mode("hubert")

    with pytest.raises(StreamError, match="live speech needs an ave checkpoint"):
        StreamingSession(Hubert(), world["templates"], world["encoder"])
    with pytest.raises(CheckpointError, match="not the ave audio encoder: .* look swapped"):
        AudioEncoder(checkpoints["ave"], device="cpu")


def test_async_iteration_yields_the_same_slots(world):
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    session.say(world["speech"]["b"])
    session.close()

    async def collect():
        return [slot async for slot in session]

    slots = asyncio.run(collect())
    assert [s.kind for s in slots] == ["speech"] * 9


def test_live_command_writes_what_a_viewer_sees(world, checkpoints, encoder_path, tmp_path):
    import av

    wav = write_speech_like_wav(tmp_path / "s.wav", 0.4)
    status = cli_status(["live", "--quiet", "--checkpoint", checkpoints["ave"], "--template-dir", world["root"] / "tpl",
                         "--audio-encoder", encoder_path, "--audio", wav, wav, "--gap-seconds", "0.2", "--output",
                         tmp_path / "live.mp4", "--frames-dir", tmp_path / "frames", "--report", tmp_path / "r.json"])
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames"] == 9 + 5 + 9 and report["speech_frames"] == 18 and report["dropped_frames"] == 0
    assert report["first_frame_latency_s"] > 0 and report["render_fps"] > 0 and report["lookahead_s"] == 0.45
    assert len(list((tmp_path / "frames").glob("*.png"))) == 23 and (tmp_path / "frames" / MANIFEST).is_file()
    with av.open(str(tmp_path / "live.mp4")) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert sum(1 for _ in container.decode(video=0)) == 23
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "live.mp4", "r.json", "s.wav"]


def test_the_first_frame_latency_is_the_first_utterances_that_showed_a_frame():
    stats = SessionStats()
    assert stats.first_frame_latency_s is None
    stats.utterances.extend([UtteranceReport(0, "drop", 0, 0.5), UtteranceReport(1, "drop", 30, 0.5, first_frame_latency_s=0.7),
                             UtteranceReport(2, "delay", 60, 0.9, first_frame_latency_s=0.4)])
    assert stats.first_frame_latency_s == 0.7


def test_a_feathered_session_gives_the_feathered_offline_frames(world):
    blend = Blend("feather", 6, color_match=True)
    samples = world["speech"]["b"]
    features = AudioFeatures(world["encoder"].features_from_samples(samples), "ave")
    expected = list(FrameGenerator(Recorder()).iter_frames(world["templates"], features, blend=blend))
    session = StreamingSession(Recorder(), world["templates"], world["encoder"], blend=blend)
    session.say(samples)
    session.close()
    slots = list(session)
    assert [s.kind for s in slots] == ["speech"] * len(expected)
    assert all(np.array_equal(slot.image, frame) for slot, frame in zip(slots, expected))
    _, exact = _offline(world, samples, Recorder())
    assert not np.array_equal(expected[0], exact[0]), "the option reaches the paste"


def test_sessions_on_one_live_model_share_its_cache_and_warm_up_and_take_fair_turns(world):
    import threading

    from frame_generation_pipeline.live.shared import LiveModel, Turns

    model = Recorder()
    live = LiveModel(model, world["templates"], world["encoder"])
    sessions = [StreamingSession.on(live, batch_size=2, realtime=True, threaded=False) for _ in range(3)]
    assert len(model.calls) == 4 * 2, "one warm-up (an untimed and three timed batches of 2) for every session"
    assert sessions[1].rate is sessions[0].rate, "one measure of the model's speed, updated by every session's batches"
    for session in sessions:
        session.template_image(0)
    # the warm-up ran batches of templates 0, 1 | 2, 3 | 4, 0 | 1, 2 of the five (uncached, as a first cycle is)
    assert (live.cache.misses, live.cache.hits) == (5, 6), "one prepared copy of a template for all sessions"
    with pytest.raises(StreamError, match="another model"):
        StreamingSession(Recorder(), world["templates"], world["encoder"], shared=live)
    turns = Turns()

    def served(asking):
        """The order in which callers asking (name, deadline) in this order, while the model is busy, get it."""
        order = []

        def take(name, deadline):
            with turns.turn(deadline):
                order.append(name)

        with turns.turn():
            waiting = []
            for name, deadline in asking:
                waiting.append(threading.Thread(target=take, args=(name, deadline)))
                waiting[-1].start()
                while turns.ahead() < len(waiting) + 1:  # this one waits with its ticket before the next asks
                    threading.Event().wait(0.001)
            assert turns.ahead(2.0) == 1 + sum(deadline <= 2.0 for _, deadline in asking)
        for thread in waiting:
            thread.join(5)
        return order

    inf = float("inf")
    assert served([("a", inf), ("b", inf), ("c", inf)]) == ["a", "b", "c"], "without deadlines: in order of asking"
    assert served([("a", 3.0), ("b", 1.0), ("c", 2.0), ("d", 1.0)]) == ["b", "d", "c", "a"], "the earliest deadline first"


def test_an_interrupted_utterance_stops_at_once_and_the_timeline_runs_on(world):
    session = StreamingSession(Recorder(), world["templates"], world["encoder"], batch_size=2)
    session.push_audio(world["speech"]["long"])  # open-ended: still being pushed when interrupted
    first = [session.next_frame(timeout=5) for _ in range(6)]
    session.interrupt()
    session.idle(3)
    session.push_audio(world["speech"]["b"])
    session.close()
    rest = list(session)
    assert [s.kind for s in first] == ["speech"] * 6 and {s.utterance for s in first} == {0}
    count_b = len(AudioFeatures(world["encoder"].features_from_samples(world["speech"]["b"]), "ave"))
    assert [s.kind for s in rest] == ["idle"] * 3 + ["speech"] * count_b, "nothing of the interrupted speech is left"
    assert {s.utterance for s in rest[3:]} == {1} and [s.frame for s in rest[3:]] == list(range(count_b))
    assert [s.slot for s in first + rest] == list(range(len(first) + len(rest))), "the timeline goes on, no slot skipped"
    assert [s.template for s in first + rest] == ping_pong_schedule(len(first) + len(rest), 5)


def _drive_together(sessions, clock):
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


def test_sessions_speaking_at_once_each_plan_with_their_share_of_the_model(world):
    from frame_generation_pipeline.live.shared import LiveModel
    from frame_generation_pipeline.live.timeline import DELAY, start_delay

    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.05)  # 20 frames/s: real time for one, not for two or three
    live = LiveModel(model, world["templates"], world["encoder"])
    samples = world["speech"]["long"]
    delays = {}
    for count in (1, 2, 3):
        sessions = [StreamingSession.on(live, batch_size=1, realtime=True, clock=clock, threaded=False, margin=0)
                    for _ in range(count)]
        for session in sessions:
            session.due(0)
            session.say(samples)
            session.close()
        shown = _drive_together(sessions, clock)
        reports = [session.stats.utterances[0] for session in sessions]
        frames = reports[0].frames + reports[0].dropped
        assert [report.dropped for report in reports] == [0] * count, f"{count} at once: nothing dropped"
        assert all(len([s for s in slots if s.kind == "speech"]) == frames for slots in shown)
        rate = sessions[0].rate
        assert rate.seconds_per_frame == pytest.approx(0.05), "a session measures its turns, not its wait for them"
        delays[count] = [report.start_delay_s for report in reports]
        planned = start_delay(DELAY, frames, rate.shared_by(count), 0)
        assert all(planned <= delay <= planned + 1 / FPS for delay in delays[count]), f"{count} at once share the model"
    assert delays[1][0] < delays[2][0] < delays[3][0]
    assert live.speakers(sessions[0].timeline) == 1, "sessions done speaking count no more"


def test_open_speech_of_two_sessions_gets_about_half_of_the_model_each(world):
    from frame_generation_pipeline.live.shared import LiveModel

    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.02)  # 50 frames/s: real time for two at once
    live = LiveModel(model, world["templates"], world["encoder"])
    samples = world["speech"]["long"]
    alone = StreamingSession.on(live, batch_size=1, realtime=True, clock=clock, threaded=False)
    model.seconds_per_frame = 0.06  # now 2/3 of real time for one, a third for each of two
    pair = [StreamingSession.on(live, batch_size=1, realtime=True, clock=clock, threaded=False, half_rate=False)
            for _ in range(2)]
    for session in pair:
        session.due(0)
        session.push_audio(samples)
        session.end_of_speech()
        session.close()
    _drive_together(pair, clock)
    shown = [session.stats.utterances[0].frames for session in pair]
    frames = shown[0] + pair[0].stats.utterances[0].dropped
    assert abs(shown[0] - shown[1]) <= 2, f"fair turns: {shown}"
    report = pair[0].stats.utterances[0]
    capacity = (report.start_delay_s + frames / FPS) / 0.06  # frames the model can make before the last is due
    assert 0.8 * capacity <= sum(shown) <= capacity + 2, "the model's time goes to frames shown, half to each"
    assert alone.stats.slots == 0 and live.speakers(alone.timeline) == 1, "an idle session asks for no turn"


def test_a_session_measures_its_turns_at_the_model_not_its_wait_for_them(world):
    import threading
    import time

    from frame_generation_pipeline.live.shared import LiveModel

    live = LiveModel(Recorder(), world["templates"], world["encoder"])
    session = StreamingSession.on(live, batch_size=1, realtime=True, threaded=False)
    session.due(0)
    session.say(world["speech"]["b"])
    with live.turn():  # another session's batch holds the model
        worker = threading.Thread(target=session.work)
        worker.start()
        while live.turns.ahead() < 2:  # the session is waiting for its turn
            time.sleep(0.001)
        time.sleep(0.3)
    worker.join(5)
    assert session.stats.utterances and session.timeline.utterances()[0].next_render == 1, "it rendered its batch"
    assert session.rate.seconds_per_batch < 0.3, "the 0.3 s waited for the turn is not the model's speed"


def test_a_session_already_speaking_keeps_its_pace_when_another_starts(world):
    import threading
    import time

    from frame_generation_pipeline.live.shared import LiveModel
    from frame_generation_pipeline.live.timeline import RealClock

    model = Recorder(RealClock(), seconds_per_frame=0.03)  # 33 frames/s: real time for one, not for two
    live = LiveModel(model, world["templates"], world["encoder"])
    sessions = [StreamingSession.on(live, batch_size=1, realtime=True) for _ in range(2)]
    viewers = [threading.Thread(target=lambda s=session: list(s)) for session in sessions]
    for viewer in viewers:
        viewer.start()
    sessions[0].say(world["speech"]["long"])  # placed alone: it plans on the whole model
    time.sleep(0.3)
    sessions[1].say(world["speech"]["long"])  # plans on half of it, and must not take A's half
    for session in sessions:
        session.close()
    for viewer in viewers:
        viewer.join(30)
    reports = [session.stats.utterances[0] for session in sessions]
    assert reports[1].start_delay_s > reports[0].start_delay_s + 0.3, "the second plans with its share"
    assert all(report.dropped <= 1 for report in reports), f"both on time (turns in order of asking drop ~5 of A's): {reports}"


def test_a_turn_kept_for_its_holder_goes_to_it_first_and_lapses_if_not_taken():
    import threading
    import time

    from frame_generation_pipeline.live.shared import Turns

    turns, order = Turns(hold=0.2), []

    def later():
        with turns.turn(2.0, "later"):
            order.append("later")

    with turns.turn(1.0, "urgent") as turn:
        waiter = threading.Thread(target=later)
        waiter.start()
        while turns.ahead() < 2:
            time.sleep(0.001)
        turn.again(1.5)  # its next batch, due before the waiter's
    time.sleep(0.05)  # the holder's work between its two turns
    with turns.turn(1.5, "urgent"):
        order.append("urgent")
    waiter.join(5)
    assert order == ["urgent", "later"], "the kept place beats a later deadline that asked meanwhile"
    with turns.turn(1.0, "urgent") as turn:
        turn.again(1.0)
    started = time.monotonic()
    with turns.turn(3.0, "other"):  # the holder does not come back: its place lapses after `hold`
        waited = time.monotonic() - started
    assert waited >= 0.15, "it waited for the kept place to lapse"
    assert turns.ahead() == 0
