"""Races in the live engine, each forced deterministically: a thread pauses inside a hook until the
other has run to its end or finds the timeline's lock taken (no sleeps): the viewer and the render
thread placing one utterance at once, a reader of the counts while a slot advances, and a turn whose
wait fails."""

from __future__ import annotations

import threading

import pytest

from frame_generation_pipeline.live.scheduler import Turns
from frame_generation_pipeline.live.session import StreamingSession

from .live_helpers import FakeClock, Recorder, make_world

#: Only a guard against a hang when the code under test deadlocks; no correct run waits for it.
HANG_GUARD_S = 60


@pytest.fixture(scope="module")
def world(tmp_path_factory, encoder_path):
    """The live tests' templates, speech and encoder."""
    return make_world(tmp_path_factory.mktemp("live"), encoder_path)


class Watched(threading.Condition):
    """A timeline's lock that sets `go` when the thread named `name` finds it taken by another."""

    def __init__(self, name, go):
        super().__init__()
        self.name, self.go = name, go

    def __enter__(self):
        if threading.current_thread().name == self.name:
            if self.acquire(blocking=False):
                return True
            self.go.set()
        return super().__enter__()


def interleave(session, other):
    """A hook that, called first on this thread, runs `other` on a thread of its own and returns once
    `other` has finished or waits for the session's timeline lock; the thread and what it raised."""
    go, raised = threading.Event(), []
    session.timeline.changed = Watched("other", go)

    def run():
        try:
            other()
        except BaseException as exc:  # reported to the test
            raised.append(exc)
        finally:
            go.set()

    thread = threading.Thread(target=run, name="other", daemon=True)

    def pause():
        if threading.current_thread() is not thread and not thread.is_alive() and not go.is_set():
            thread.start()
            assert go.wait(HANG_GUARD_S)

    return pause, thread, raised


def test_the_viewer_and_the_render_thread_placing_one_utterance_at_once_place_it_once(world):
    """Fails on the code before the fix: the render thread places the utterance while the viewer is
    choosing its stride, and the viewer's set_stride fires 'the stride is chosen before the start'."""
    clock = FakeClock()
    session = StreamingSession(Recorder(clock, seconds_per_frame=0.06), world["templates"], world["encoder"],
                               batch_size=1, realtime=True, clock=clock, threaded=False)
    session.due(0)
    session.push_audio(world["speech"]["b"])
    pause, render_thread, raised = interleave(session, session.work)  # the render thread's step
    stride = session.renderer.stride

    def paused_stride():
        pause()  # the viewer, placing the utterance, is choosing its stride
        return stride()

    session.renderer.stride = paused_stride
    first = session.next_frame()  # the viewer
    render_thread.join(HANG_GUARD_S)
    assert not render_thread.is_alive() and not raised, raised
    [utterance] = session.timeline.utterances()
    [report] = session.stats.utterances
    assert first.kind == "idle" and utterance.start_slot == report.start_slot > first.slot
    assert report.half_rate == (utterance.stride == 2) and utterance.stride == 2, "placed once, as planned"


def test_a_reader_of_the_counts_sees_a_slot_shown_and_counted_or_neither(world):
    """Fails on the code before the fix: a reader between `advance`'s move to the next slot and its
    count saw slot 1 next with 0 slots counted."""
    session = StreamingSession(Recorder(), world["templates"], world["encoder"])
    session.idle(2)
    seen = []
    pause, reader, raised = interleave(session, lambda: seen.append((session.next_slot, session.stats.slots)))
    stats = session.timeline.stats
    count = stats.count

    def paused_count(kind, repeated=False, raw=False):
        pause()  # the viewer is advancing past slot 0
        count(kind, repeated, raw)

    stats.count = paused_count
    assert session.next_frame(timeout=0).kind == "idle"
    reader.join(HANG_GUARD_S)
    assert not raised and seen == [(1, 1)], "slot 1 comes next once slot 0 is counted"


def test_a_turn_whose_wait_fails_gives_its_place_back():
    """Fails on the code before the fix: the failed waiter's place stayed at the head of the queue,
    so every later turn waited for it forever."""
    turns = Turns()
    held = turns.turn(1.0)
    held.__enter__()

    def failing_wait(timeout=None):
        raise KeyboardInterrupt

    real_wait, turns._changed.wait = turns._changed.wait, failing_wait
    with pytest.raises(KeyboardInterrupt), turns.turn(0.5):
        pass
    turns._changed.wait = real_wait
    held.__exit__(None, None, None)
    assert turns.ahead() == 0, "nothing held or waiting: the failed waiter's place was given back"
    with turns.turn(2.0):
        assert turns.ahead() == 1
