"""Sessions sharing one model: one cache and warm-up, turns by the earliest deadline, each session
planning with its share, measuring its turns and not its waits, and kept turns that lapse."""

from __future__ import annotations

import threading

import pytest

from frame_generation_pipeline.errors import StreamError
from frame_generation_pipeline.live.session import StreamingSession
from frame_generation_pipeline.live.slot import FPS

from .live_helpers import FakeClock, Recorder, drive_together, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory, encoder_path):
    """The live tests' templates, speech and encoder."""
    return make_world(tmp_path_factory.mktemp("live"), encoder_path)


def test_sessions_on_one_live_model_share_its_cache_and_warm_up_and_take_fair_turns(world):

    from frame_generation_pipeline.live.scheduler import Turns
    from frame_generation_pipeline.live.shared import LiveModel

    model = Recorder()
    live = LiveModel(model, world["templates"], world["encoder"], rest_in_background=False)
    sessions = [StreamingSession.on(live, batch_size=2, realtime=True, threaded=False) for _ in range(3)]
    assert len(model.calls) == 1 + 2 + 3 * 2, "one warm-up (untimed batches of 1 and 2, three timed of 2) for all sessions"
    assert sessions[1].rate is sessions[0].rate, "one measure of the model's speed, updated by every session's batches"
    for session in sessions:
        session.template_image(0)
    # the warm-up ran batches of templates 0 | 0, 1 (untimed) | 2, 3 | 4, 0 | 1, 2 of the five (timed: a first cycle)
    assert (live.cache.misses, live.cache.hits) == (5, 7), "one cropped copy of a template for all sessions"
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


def test_sessions_speaking_at_once_each_plan_with_their_share_of_the_model(world):
    from frame_generation_pipeline.live.pacing import DELAY, start_delay
    from frame_generation_pipeline.live.shared import LiveModel

    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.05)  # 20 frames/s: real time for one, not for two or three
    live = LiveModel(model, world["templates"], world["encoder"], rest_in_background=False)
    samples = world["speech"]["long"]
    delays = {}
    for count in (1, 2, 3):
        # every frame rendered (no slower rate), so that each waits for its share (test_live_pacing.py has the rate)
        sessions = [StreamingSession.on(live, batch_size=1, realtime=True, clock=clock, threaded=False, margin=0,
                                        half_rate=False) for _ in range(count)]
        for session in sessions:
            session.due(0)
            session.say(samples)
            session.close()
        shown = drive_together(sessions, clock)
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
    assert sessions[0].seat.speakers() == 1, "sessions done speaking count no more"


def test_open_speech_of_two_sessions_gets_about_half_of_the_model_each(world):
    from frame_generation_pipeline.live.shared import LiveModel

    clock = FakeClock()
    model = Recorder(clock, seconds_per_frame=0.02)  # 50 frames/s: real time for two at once
    live = LiveModel(model, world["templates"], world["encoder"], rest_in_background=False)
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
    drive_together(pair, clock)
    shown = [session.stats.utterances[0].frames for session in pair]
    frames = shown[0] + pair[0].stats.utterances[0].dropped
    assert abs(shown[0] - shown[1]) <= 2, f"fair turns: {shown}"
    report = pair[0].stats.utterances[0]
    capacity = (report.start_delay_s + frames / FPS) / 0.06  # frames the model can make before the last is due
    assert 0.8 * capacity <= sum(shown) <= capacity + 2, "the model's time goes to frames shown, half to each"
    assert alone.stats.slots == 0 and alone.seat.speakers() == 1, "an idle session asks for no turn"


def test_a_session_measures_its_turns_at_the_model_not_its_wait_for_them(world):
    import time

    from frame_generation_pipeline.live.shared import LiveModel

    live = LiveModel(Recorder(), world["templates"], world["encoder"], rest_in_background=False)
    # a second of slack before its first frame is due: the 0.3 s it waits for its turn (and a loaded machine's
    # scheduling) leaves that frame on time, so the batch it renders is shown
    session = StreamingSession.on(live, batch_size=1, realtime=True, threaded=False, margin=1.0)
    session.due(0)
    session.say(world["speech"]["b"])
    with live.scheduler.turn():  # another session's batch holds the model
        worker = threading.Thread(target=session.work)
        worker.start()
        while live.scheduler.ahead() < 2:  # the session is waiting for its turn
            time.sleep(0.001)
        time.sleep(0.3)
    worker.join(5)
    assert session.stats.utterances and [session.timeline.utterances()[0].has_frame(i) for i in (0, 1)] == [True, False], \
        "it rendered its batch"
    assert session.rate.seconds_per_batch < 0.3, "the 0.3 s waited for the turn is not the model's speed"


def test_a_session_already_speaking_keeps_its_pace_when_another_starts(world):
    import time

    from frame_generation_pipeline.live.shared import LiveModel
    from frame_generation_pipeline.live.slot import RealClock

    model = Recorder(RealClock(), seconds_per_frame=0.03)  # 33 frames/s: real time for one, not for two
    live = LiveModel(model, world["templates"], world["encoder"], rest_in_background=False)
    sessions = [StreamingSession.on(live, batch_size=1, realtime=True, half_rate=False) for _ in range(2)]  # every frame
    viewers = [threading.Thread(target=lambda s=session: list(s)) for session in sessions]
    for viewer in viewers:
        viewer.start()
    sessions[0].say(world["speech"]["long"])  # placed alone: it plans on the whole model
    shown_by = time.monotonic() + 10
    while sessions[0].stats.speech_frames == 0 and time.monotonic() < shown_by:  # A speaking (its first frame shown)
        time.sleep(0.01)
    sessions[1].say(world["speech"]["long"])  # plans on half of it, and must not take A's half
    for session in sessions:
        session.close()
    for viewer in viewers:
        viewer.join(30)
    reports = [session.stats.utterances[0] for session in sessions]
    assert reports[1].start_delay_s > reports[0].start_delay_s + 0.3, "the second plans with its share"
    assert all(report.dropped <= 1 for report in reports), f"both on time (turns in order of asking drop ~5 of A's): {reports}"


def test_a_turn_kept_for_its_holder_goes_to_it_first_and_lapses_if_not_taken():
    import time

    from frame_generation_pipeline.live.scheduler import Turns

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


def test_a_seat_counts_the_sessions_that_reported_speech_to_render():
    from frame_generation_pipeline.live.scheduler import Scheduler

    scheduler = Scheduler()
    first, second, third = (scheduler.join() for _ in range(3))
    assert first.speakers() == 1, "no need reported yet"
    second.report_need(True)
    third.report_need(True)
    assert [first.speakers(), second.speakers(), third.speakers()] == [3, 2, 2], "each counts itself, and the others in need"
    third.report_need(False)
    assert [first.speakers(), third.speakers()] == [2, 2]
    second.leave()
    assert [first.speakers(), third.speakers()] == [1, 1], "a session that left is not counted"


def test_a_session_reports_its_need_when_speech_is_queued_interrupted_and_rendered(world):
    from frame_generation_pipeline.live.shared import LiveModel

    live = LiveModel(Recorder(), world["templates"], world["encoder"], rest_in_background=False)
    listener, speaker = (StreamingSession.on(live, batch_size=2) for _ in range(2))
    speaker.push_audio(world["speech"]["b"])
    assert listener.seat.speakers() == 2, "open speech has frames to render"
    speaker.interrupt()
    assert listener.seat.speakers() == 1, "interrupted: nothing left to render"
    speaker.say(world["speech"]["b"])
    assert listener.seat.speakers() == 2
    frames = speaker.frames_for(len(world["speech"]["b"]))
    shown = [speaker.next_frame(timeout=0) for _ in range(frames)]
    assert [s.kind for s in shown] == ["speech"] * frames and not speaker.closed
    assert listener.seat.speakers() == 1, "every frame rendered: the session no longer needs turns"
