"""A live session: streamed speech gives the offline frames for every chunking, the schedule runs on
through idle time and interruptions, bounded state, refusals, and what a viewer is shown and hears."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from frame_generation_pipeline import FrameGenerationPipeline
from frame_generation_pipeline.contract import SAMPLE_RATE, get_mode
from frame_generation_pipeline.errors import CheckpointError, StreamError
from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.inputs.templates import ping_pong_schedule
from frame_generation_pipeline.live.screen import Screen, to_int16
from frame_generation_pipeline.live.session import StreamingSession
from frame_generation_pipeline.live.slot import FPS, SLOT_SAMPLES, LiveFrame
from frame_generation_pipeline.live.utterance import check_samples
from frame_generation_pipeline.models.audio_encoder import AudioEncoder
from frame_generation_pipeline.models.backends.base import InferenceModel
from frame_generation_pipeline.render.blend import FEATHER, NO_BLEND, Blend
from frame_generation_pipeline.render.cropped import compose, crop_template

from .live_helpers import Recorder, make_world, offline, push, with_silence


@pytest.fixture(scope="module")
def world(tmp_path_factory, encoder_path):
    """The live tests' templates, speech and encoder."""
    return make_world(tmp_path_factory.mktemp("live"), encoder_path)


@pytest.mark.parametrize("chunk", [1, 320, 16000, "random"])
def test_streamed_speech_gives_the_offline_frames_for_every_chunking(world, chunk):
    samples = world["speech"]["a"]
    offline_model, live_model = Recorder(), Recorder()
    _, expected = offline(world, samples, offline_model)  # the speech followed by silence, to where the mouth rests
    count = len(expected)
    session = StreamingSession(live_model, world["templates"], world["encoder"], batch_size=3)
    push(session, samples, chunk)
    session.close()
    slots = list(session)
    assert [s.kind for s in slots] == ["speech"] * count and [s.frame for s in slots] == list(range(count))
    assert len(live_model.calls) == len(offline_model.calls) == count
    for (live_image, live_audio), (image, audio) in zip(live_model.calls, offline_model.calls):
        assert np.array_equal(live_image, image) and np.array_equal(live_audio, audio)
    for slot, frame in zip(slots, expected):
        assert np.array_equal(slot.image, frame)
    heard = np.concatenate([s.audio for s in slots])
    assert len(heard) == count * SLOT_SAMPLES
    expected = np.zeros_like(heard)
    expected[: min(len(heard), len(samples))] = samples[: len(heard)]
    assert np.array_equal(heard, expected), "the speech as heard: cut or padded to the frames, as offline"
    assert [s.pts for s in slots[:3]] == [0.0, 1 / FPS, 2 / FPS]


def test_the_exact_backend_streams_the_offline_video_bit_for_bit(world, checkpoints, encoder_path, tmp_path):
    """Speech, then the avatar at rest: the speech's frames are the offline render of the speech followed by
    silence (the mouth closes), every idle image is the offline render of a long silence on its template
    (away from the edges), the same each time a template recurs, and never the raw template."""
    import soundfile

    samples = world["speech"]["b"]
    soundfile.write(tmp_path / "b.wav", with_silence(samples), 16000, subtype="FLOAT")  # the speech, then silence
    soundfile.write(tmp_path / "silence.wav", np.zeros(2 * SAMPLE_RATE, np.float32), 16000, subtype="FLOAT")
    pipeline = FrameGenerationPipeline(checkpoints["ave"], device="cpu", backend="torch")
    session = StreamingSession.from_pipeline(pipeline, world["templates"], world["encoder"], blend=NO_BLEND)  # upstream's
    push(session, samples, 320)
    session.idle(10)
    session.close()
    slots = list(session)
    speech, idle = slots[:-10], slots[-10:]
    assert len(speech) == session.frames_for(len(samples)) and {s.kind for s in speech} == {"speech"}
    # every third frame rendered offline on its own (its template and audio window; each place in a batch
    # of the session's comes up): the model's inputs of every frame are checked for every chunking above
    features = pipeline.features(audio=tmp_path / "b.wav", audio_encoder=encoder_path)
    for index in range(0, len(speech), 3):
        frame = next(pipeline.generator.iter_frames(world["templates"], features, first_frame=index, frame_count=1))
        assert np.array_equal(speech[index].image, frame), f"speech frame {index}"
    silence = pipeline.features(audio=tmp_path / "silence.wav", audio_encoder=encoder_path)
    rest = {r.template_index: r.image for r in pipeline.generator.render(world["templates"], silence, first_frame=15,
                                                                         frame_count=5)}  # templates 0..4, no edge
    assert [s.kind for s in idle] == ["idle"] * 10 and len({s.template for s in idle}) == 5 < len(idle), "each recurs"
    assert all(np.array_equal(slot.image, rest[slot.template]) for slot in idle)
    assert not any(np.array_equal(slot.image, world["templates"].load(slot.template).image) for slot in idle)
    assert session.stats.idle_rendered == 10 and session.stats.idle_raw == 0


@pytest.mark.parametrize("gap", [7, 0])
def test_two_utterances_with_an_idle_gap_continue_the_schedule(world, gap):
    """With idle="template": today's frames (the templates as they are at rest, speech that ends with its sound)."""
    model = Recorder()
    session = StreamingSession(model, world["templates"], world["encoder"], batch_size=2, idle="template")
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
    outputs = model.run(np.stack([crop_template(world["templates"].load(s.template)).network_input for s in second_slots]),
                        features_b.windows(range(second)))
    for slot, output in zip(second_slots, outputs):
        assert np.array_equal(slot.image, compose(crop_template(world["templates"].load(slot.template)), output, FEATHER))


def test_idle_only_shows_the_templates_in_schedule_order(world):
    session = StreamingSession(Recorder(), world["templates"], world["encoder"], idle="template")
    session.idle(12)
    session.close()
    slots = list(session)
    assert [s.kind for s in slots] == ["idle"] * 12 and [s.template for s in slots] == ping_pong_schedule(12, 5)
    assert session.stats.idle_frames == session.stats.idle_raw == 12 and session.stats.speech_frames == 0
    assert all(np.array_equal(s.image, world["templates"].load(s.template).image) for s in slots)


def test_the_last_frames_wait_for_the_end_of_speech(world):
    samples = world["speech"]["a"]
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    count = session.frames_for(len(samples))
    session.push_audio(samples)
    early = []
    while (slot := session.next_frame(timeout=0.2)) is not None:
        early.append(slot)
    assert 0 < len(early) < count, "frames whose window is complete come out before the end"
    session.end_of_speech()
    session.close()
    assert len(early) + len(list(session)) == count


def test_a_feathered_session_gives_the_feathered_offline_frames(world):
    blend = Blend("feather", 6, color_match=True)
    samples = world["speech"]["b"]
    _, expected = offline(world, samples, Recorder(), blend)
    session = StreamingSession(Recorder(), world["templates"], world["encoder"], blend=blend)
    session.say(samples)
    session.close()
    slots = list(session)
    assert [s.kind for s in slots] == ["speech"] * len(expected)
    assert all(np.array_equal(slot.image, frame) for slot, frame in zip(slots, expected))
    _, exact = offline(world, samples, Recorder())
    assert not np.array_equal(expected[0], exact[0]), "the option reaches the paste"


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
    count_b = session.frames_for(len(world["speech"]["b"]))
    assert [s.kind for s in rest] == ["idle"] * 3 + ["speech"] * count_b, "nothing of the interrupted speech is left"
    assert {s.utterance for s in rest[3:]} == {1} and [s.frame for s in rest[3:]] == list(range(count_b))
    assert [s.slot for s in first + rest] == list(range(len(first) + len(rest))), "the timeline goes on, no slot skipped"
    assert [s.template for s in first + rest] == ping_pong_schedule(len(first) + len(rest), 5)


def test_async_iteration_yields_the_same_slots(world):
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    session.say(world["speech"]["b"])
    session.close()

    async def collect():
        return [slot async for slot in session]

    slots = asyncio.run(collect())
    assert [s.kind for s in slots] == ["speech"] * session.frames_for(len(world["speech"]["b"]))


#: The simulated minutes of the state test.
MINUTES = 20


def test_state_stays_bounded_over_twenty_simulated_minutes(world):
    class Zeros(AudioEncoder):  # encoder and network stand-ins: state, not arithmetic, is measured here
        def __init__(self):  # loads nothing
            pass

        def encode_windows(self, windows):
            return np.zeros((len(windows), 512), np.float32)

    class Blank(InferenceModel):
        name = "blank"

        def run(self, images, audio):
            return np.zeros((len(images), 3, 320, 320), np.float32)

    session = StreamingSession(Blank(get_mode("ave")), world["templates"], Zeros(), batch_size=4, idle="template")  # rest frames: test_live_rest
    sizes, in_flight = [], []
    # a 2 s utterance and 58 s of idle each minute: state that grew would grow from one minute to the next
    # (twenty: each utterance's 57 frames cost 70 ms of pasting here, an hour's 4 CPU-s of the test's 9)
    for _minute in range(MINUTES):
        session.say(world["speech"]["long"])
        for _slot in range(FPS):  # a second into the utterance: its speech, features and frames are held now
            assert session.next_frame(timeout=0) is not None
        sizes.append(session.state_bytes())
        in_flight.append(sizes[-1] - session.live.cache.nbytes)
        session.idle(58 * FPS)
        while session.next_frame(timeout=0) is not None:  # the rest of the minute
            pass
    frames = session.frames_for(len(world["speech"]["long"]))
    assert session.stats.slots == MINUTES * (58 * FPS + frames) and session.stats.speech_frames == MINUTES * frames
    assert min(in_flight) >= SAMPLE_RATE * 4, "measured under way: at least the unplayed second of speech (float32)"
    assert max(sizes[5:]) <= max(sizes[:5]), f"state grew: {sizes}"
    assert max(sizes) <= 64 << 20, "the cropped-template cache's budget bounds it"
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
                    threads.append(threading.Thread(target=utterance.record, args=(1, pixels, 0.0)))
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
    assert session.stats.slots == 0 and len(list(session)) == session.frames_for(len(world["speech"]["b"]))


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


def test_a_viewer_hears_int16_that_round_trips_the_speech_pushed_in():
    values = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 1.5 / 32768, 2.5 / 32768], np.float32)
    assert to_int16(values).tolist() == [-32768, -32768, -16384, 0, 16384, 32767, 32767, 2, 2], \
        "times 32768, rounded half to even, clipped to the int16 range"
    speech = np.arange(-32768, 32768).astype(np.int16)  # every int16 value
    assert np.array_equal(to_int16(check_samples(speech)), speech), "int16 speech pushed in plays out sample for sample"


def test_a_dropped_slot_shows_its_utterances_last_image_or_where_the_idle_schedule_stands():
    """A reply whose first frames are late does not hold the last idle image (the Pipecat service held one
    for 12 slots): until its first image, its dropped slots show the idle image of their own template."""
    idle = {k: np.full((4, 4, 3), k, np.uint8) for k in range(3)}
    speech = np.full((4, 4, 3), 200, np.uint8)
    silence = np.zeros(SLOT_SAMPLES, np.float32)
    screen = Screen(idle.__getitem__)
    shown = [screen.show(LiveFrame(0, "idle", idle[0], silence, 0)),
             screen.show(LiveFrame(1, "dropped", None, silence, 1, utterance=0)),  # the reply's first frame is late
             screen.show(LiveFrame(2, "dropped", None, silence, 2, utterance=0)),  # and its second
             screen.show(LiveFrame(3, "speech", speech, silence, 1, utterance=0)),
             screen.show(LiveFrame(4, "dropped", None, silence, 0, utterance=0)),  # its utterance's last image
             screen.show_idle(2),  # an avatar's interrupted speech shows the idle image
             screen.show(LiveFrame(6, "dropped", None, silence, 1, utterance=0)),
             screen.show(LiveFrame(7, "dropped", None, silence, 0, utterance=1))]  # the next reply, late
    assert [image is expected for image, expected in
            zip(shown, [idle[0], idle[1], idle[2], speech, speech, idle[2], idle[1], idle[0]])] == [True] * 8
