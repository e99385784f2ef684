"""The avatar at rest: speech runs on into silence and its mouth closes on the rest frame, rest frames
are kept on disk for the next start, the background thread takes the model only while no session has
speech, and a real-time session shows a raw template only while its rest frame is not computed."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from frame_generation_pipeline.inputs.features import AudioFeatures
from frame_generation_pipeline.live.session import StreamingSession
from frame_generation_pipeline.live.shared import LiveModel
from frame_generation_pipeline.models.cache import clear_cache, select_entries
from frame_generation_pipeline.models.silence import rest_window, run_on
from frame_generation_pipeline.render.blend import FEATHER
from frame_generation_pipeline.render.cropped import compose, crop_template

from .live_helpers import FakeClock, Recorder, make_world, offline, with_silence


class Keyed(Recorder):
    """A Recorder that names its checkpoint and device, so that its rest frames can be kept on disk."""

    checkpoint_sha256, device = "ab" * 32, "cpu"


@pytest.fixture(scope="module")
def world(tmp_path_factory, encoder_path):
    """The live tests' templates, speech and encoder."""
    return make_world(tmp_path_factory.mktemp("rest"), encoder_path)


def rest_image(world, model, template):
    """The render of a long silence on `template`, as the offline path computes it (a session's paste: feathered)."""
    cropped = crop_template(world["templates"].load(template))
    return compose(cropped, model.run(cropped.network_input[None], rest_window(world["encoder"])[None])[0], FEATHER)


def test_the_mouth_closes_after_an_utterance_and_rests_on_the_rest_frame(world):
    samples = world["speech"]["a"]
    features, expected = offline(world, samples, Recorder())  # the speech followed by silence
    session = StreamingSession(Recorder(), world["templates"], world["encoder"], batch_size=2)
    session.say(samples)
    session.idle(6)
    session.close()
    slots = list(session)
    count = len(expected)
    assert count == run_on(world["encoder"], len(samples)).frames > len(AudioFeatures(
        world["encoder"].features_from_samples(samples), "ave")), "it runs on past the speech's own frames"
    assert [s.kind for s in slots] == ["speech"] * count + ["idle"] * 6
    assert all(np.array_equal(slot.image, frame) for slot, frame in zip(slots, expected)), "its last frames too"
    assert not slots[count - 1].audio.any(), "the frames after the speech carry silence"
    first_idle = slots[count]
    after = offline(world, with_silence(samples), Recorder(), tail=False)[1][count]  # the next frame offline
    assert np.array_equal(first_idle.image, after), "the first idle frame is where the mouth came to rest"
    assert np.array_equal(first_idle.image, rest_image(world, Recorder(), first_idle.template))
    assert np.array_equal(features.window(count), rest_window(world["encoder"])), "its window holds only silence"


def test_rest_frames_are_found_on_disk_by_a_second_live_model(world):
    clear_cache("ab" * 12)
    first = LiveModel(Keyed(), world["templates"], world["encoder"], rest_in_background=False)
    first.rest.compute(range(5))
    assert first.rest.computed == 5 and [e.kind for e in select_entries("ab" * 12)] == ["rest"], "`frame-gen cache` lists it"
    second = LiveModel(Keyed(), world["templates"], world["encoder"], rest_in_background=False)
    second.rest_filler.start()
    second.rest_filler.join(30)
    assert second.rest.computed == 0 and second.rest_filler.turns == 0, "nothing computed again"
    images = [second.idle_image(k) for k in range(5)]
    assert second.rest.loaded == 5 and not any(raw for _, raw in images)
    assert all(np.array_equal(image, rest_image(world, Keyed(), k)) for k, (image, _) in enumerate(images))
    other = Keyed()
    other.precision = "bf16"
    assert LiveModel(other, world["templates"], world["encoder"], rest_in_background=False).idle_image(0)[1], \
        "another precision has rest frames of its own"
    assert [e.kind for e in clear_cache("ab" * 12)] == ["rest"] and not second.rest.store.has(0)


def test_the_background_thread_takes_no_turn_while_a_session_has_speech(world, monkeypatch):
    live = LiveModel(Recorder(), world["templates"], world["encoder"], rest_in_background=False)
    seat = live.scheduler.join()
    need_at_call, declined, batches = [], threading.Event(), []
    wrapped_run, wrapped_compute, wrapped_wait = live.model.run, live.rest.compute, live.scheduler.wait_quiet

    def run(images, audio):
        need_at_call.append(seat.speaking)
        return wrapped_run(images, audio)

    def wait_quiet(timeout):
        declined.set()  # the thread found the model taken by speech and waits
        wrapped_wait(timeout)

    def compute(templates):
        batches.append(list(templates))
        wrapped_compute(templates)

    monkeypatch.setattr(live.model, "run", run)
    monkeypatch.setattr(live.scheduler, "wait_quiet", wait_quiet)
    monkeypatch.setattr(live.rest, "compute", compute)
    seat.report_need(True)  # a session has speech to render
    live.rest_filler.hint(3)  # a session showed template 3 first
    live.rest_filler.start()
    assert declined.wait(30)
    assert live.rest_filler.turns == 0 and need_at_call == [], "no turn, no network call while speech is waiting"
    seat.report_need(False)  # the speech is rendered: the thread goes on by itself
    live.rest_filler.join(30)
    assert batches == [[3], [4], [0], [1], [2]], "the idle schedule's order, from where a session needed one"
    assert need_at_call == [False] * 5 and live.rest_filler.turns == 5


def test_a_realtime_session_shows_a_raw_template_only_until_its_rest_frame_is_computed(world):
    clock = FakeClock()
    live = LiveModel(Recorder(), world["templates"], world["encoder"], rest_in_background=False)
    live.rest_filler.stop()  # a cold start whose rest frames are not computed yet
    session = StreamingSession.on(live, realtime=True, threaded=False, clock=clock)
    cold = [session.next_frame() for _ in range(3)]
    live.rest.compute(range(5))
    warm = [session.next_frame() for _ in range(3)]
    session.close(drain=False)
    assert [(s.kind, s.raw) for s in cold + warm] == [("idle", True)] * 3 + [("idle", False)] * 3
    assert all(np.array_equal(s.image, world["templates"].load(s.template).image) for s in cold)
    assert all(np.array_equal(s.image, rest_image(world, Recorder(), s.template)) for s in warm)
    assert (session.stats.idle_raw, session.stats.idle_rendered) == (3, 3)
