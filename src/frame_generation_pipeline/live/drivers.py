"""How a live session's slots are taken: in real time (each slot when it is due, frames rendered
ahead by a thread of the session's own, late ones dropped) or as a simulation (each slot rendered
when it is asked for, nothing dropped, no clock to wait for)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import numpy as np

from ..render.blend import FEATHER, Blend
from .pacing import DELAY, DROP, MAX_CATCH_UP_SECONDS, catch_up_wait, start_delay
from .renderer import Renderer
from .shared import LiveModel
from .slot import RENDERED, SLOT_SAMPLES, TEMPLATE, LiveFrame
from .timeline import IdleRun, Segment, Timeline
from .utterance import Utterance

logger = logging.getLogger(__name__)

_SILENCE = np.zeros(SLOT_SAMPLES, np.float32)


class Driver:
    """What both ways of taking slots share: the session's timeline, its renderer, the shared model,
    how the session pastes its frames and what its idle slots show (`idle`: live/rest.py)."""

    #: An idle slot whose rest frame is not kept yet has it computed at once (a simulation) or shows
    #: the template as it is meanwhile (real time: never on the viewer's thread).
    computes_rest = False

    def __init__(self, timeline: Timeline, renderer: Renderer, live: LiveModel, blend: Blend = FEATHER,
                 idle: str = RENDERED) -> None:
        self.timeline, self.renderer, self.live, self.blend, self.idle = timeline, renderer, live, blend, idle

    def place(self, utterance: Utterance, not_before: int | None = None) -> None:
        """Give the utterance its first slot (see Timeline.place)."""
        raise NotImplementedError

    def next_frame(self, timeout: float | None) -> LiveFrame | None:
        """The next slot; None once the session is closed and drained (or on a timeout)."""
        raise NotImplementedError

    def start(self) -> None:
        """The timeline's clock has started (real time: the render thread begins)."""

    def rendering(self) -> bool:
        """True while a render thread of the session's own is running."""
        return False

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the session's render thread to end (none here)."""

    def skip_after(self) -> Callable[[int], float] | None:
        """When each slot is due, for skipping frames that cannot be on time (None: skip none)."""
        return None

    def work(self, utterance: Utterance | None = None) -> bool:
        """One step of rendering (of `utterance`, or of the first with frames left); False when
        there was nothing to do."""
        utterance = utterance or self._to_render()
        if utterance is None:
            return False
        self.place(utterance)
        worked = self.renderer.step(utterance, self.skip_after())
        self.timeline.report_need()  # the step may have rendered, skipped or ingested its last frames
        return worked

    def _to_render(self) -> Utterance | None:
        """The first utterance with frames left to render, placed on the timeline."""
        utterances = self.timeline.utterances()
        previous_end = None
        for utterance in utterances:
            if utterance.start_slot is None:
                if utterance is not utterances[0] and previous_end is None:
                    return None  # the one before is still open: its end, and this start, are unknown
                self.place(utterance, previous_end)
            if utterance.has_frames_to_render():
                return utterance
            previous_end = utterance.end_slot()
        return None

    def _idle_or_waiting(self, segment: Segment | None) -> bool:
        """True when the next slot is idle: nothing queued, an idle run, or before an utterance's start."""
        if segment is None or isinstance(segment, IdleRun):
            return True
        self.place(segment)
        assert segment.start_slot is not None  # place() gave it its slot
        return self.timeline.slot < segment.start_slot

    def _idle(self, segment: Segment | None) -> LiveFrame:
        if isinstance(segment, IdleRun):
            self.timeline.take_idle(segment)
        slot = self.timeline.slot
        template = self.timeline.template(slot)
        image, raw = self.idle_image(template)
        return LiveFrame(slot, "idle", image, _SILENCE, template, raw=raw)

    def idle_image(self, template: int) -> tuple[np.ndarray, bool]:
        """What an idle slot on `template` shows, and whether that is the template as it is."""
        if self.idle == TEMPLATE:
            return self.live.template_image(template), True
        return self.live.idle_image(template, self.blend, self.computes_rest)

    def _take(self, utterance: Utterance, due: float) -> LiveFrame:
        slot = self.timeline.slot
        assert utterance.start_slot is not None  # placed before its first slot
        return utterance.take(slot - utterance.start_slot, slot, self.timeline.template(slot), due, self._compose)

    def _compose(self, template: int, pixels: np.ndarray) -> np.ndarray:
        return self.live.compose(template, pixels, self.blend)


class SimulatedDriver(Driver):
    """Every slot rendered when asked for, as fast as the machine can; nothing dropped."""

    computes_rest = True

    def place(self, utterance: Utterance, not_before: int | None = None) -> None:
        """The next free slot; latency counts from the utterance's turn."""
        self.timeline.place(utterance, None, not_before)

    def next_frame(self, timeout: float | None) -> LiveFrame | None:
        """The next slot, rendered now; None when closed and drained or after `timeout` seconds
        with nothing to show."""
        timeline, clock = self.timeline, self.timeline.clock
        deadline = None if timeout is None else clock.now() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(deadline - clock.now(), 0)

        while True:
            segment = timeline.head()
            if segment is None:
                if timeline.drained():
                    return None
                if not timeline.wait(remaining(), unless=lambda: timeline.head() is not None or timeline.closed):
                    return None
                continue
            if self._idle_or_waiting(segment):
                return timeline.advance(self._idle(segment))
            assert isinstance(segment, Utterance) and segment.start_slot is not None  # not idle: a placed utterance
            frame = timeline.slot - segment.start_slot
            if not segment.has_frame(frame) and not segment.done(frame):
                if not self.work(segment) and not timeline.wait(remaining(), unless=segment.more_audio_pending):
                    return None
                continue
            if segment.done(frame):
                timeline.pop_head(segment)
                continue
            return timeline.advance(self._take(segment, math.inf))


class RealtimeDriver(Driver):
    """Slots returned when due; a frame not rendered by then is dropped (the audio never waits).

    Args:
        margin: seconds of slack added to every start delay.
        threaded: render in a thread of the session's own (False: the caller drives `work`).
        on_stop: called when the render thread ends.
    """

    def __init__(self, timeline: Timeline, renderer: Renderer, live: LiveModel, margin: float, threaded: bool,
                 on_stop: Callable[[], None], blend: Blend = FEATHER, idle: str = RENDERED) -> None:
        super().__init__(timeline, renderer, live, blend, idle)
        self.margin, self.threaded, self.on_stop = margin, threaded, on_stop
        self._thread: threading.Thread | None = None

    def place(self, utterance: Utterance, not_before: int | None = None) -> None:
        """Its policy's start delay after its first sample, from the session's measured speed shared
        with the sessions speaking now; open speech (drop) also its rate: every slot, or every other
        one where that speed is below real time (Renderer.stride). The viewer and the render thread
        may both ask: the timeline places it once, planned by the first (`_plan`, under its lock)."""
        self.timeline.place(utterance, lambda: self._plan(utterance), not_before)

    def _plan(self, utterance: Utterance) -> float:
        """An unplaced utterance's start delay, its stride chosen first: open speech the renderer's;
        known-length speech every frame unless that would keep it waiting (pacing.MAX_CATCH_UP_SECONDS)."""
        expected, frames = self.renderer.expected(), utterance.known_frames()
        waits = utterance.policy == DELAY and frames is not None and \
            catch_up_wait(frames, expected, self.margin, self.renderer.batch_size) > MAX_CATCH_UP_SECONDS
        if utterance.policy == DROP or waits:
            utterance.set_stride(self.renderer.stride())
        delay = start_delay(utterance.policy, frames, expected, self.margin, self.renderer.batch_size, utterance.stride)
        delay += utterance.extra_lookahead_seconds
        if utterance.policy == DELAY:
            # known-length speech is encoded and rendered from its turn on, not from its arrival: one
            # queued behind another (a text's next sentence) plans from now, or its first frames drop
            delay += max(0.0, self.timeline.clock.now() - utterance.arrived)
        return delay

    def skip_after(self) -> Callable[[int], float]:
        """Slots are due on the timeline's clock."""
        return self.timeline.due

    def start(self) -> None:
        """Start the render thread (threaded sessions)."""
        if self.threaded:
            self._thread = threading.Thread(target=self._render_loop, name="live-render", daemon=True)
            self._thread.start()

    def rendering(self) -> bool:
        """True while the render thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the render thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def next_frame(self, timeout: float | None) -> LiveFrame | None:
        """The next slot, returned when it is due (`timeout` does not apply: slots come by the clock)."""
        timeline, clock = self.timeline, self.timeline.clock
        while True:
            if timeline.drained():
                return None
            segment = timeline.head()
            if self._idle_or_waiting(segment):
                return self._emit(self._idle(segment))
            assert isinstance(segment, Utterance) and segment.start_slot is not None  # not idle: a placed utterance
            clock.sleep(timeline.due(timeline.slot) - clock.now())
            if segment.done(timeline.slot - segment.start_slot):
                timeline.pop_head(segment)
                continue
            return self._emit(self._take(segment, timeline.due(timeline.slot)))

    def _emit(self, frame: LiveFrame) -> LiveFrame:
        clock = self.timeline.clock
        clock.sleep(self.timeline.due(frame.slot) - clock.now())
        return self.timeline.advance(frame)

    def _render_loop(self) -> None:
        try:
            while not self.timeline.drained():
                if not self.work():
                    self.timeline.wait(0.02)
        except Exception:  # the viewer keeps its slots (dropped from here on); the error is logged once
            logger.exception("live rendering stopped")
        finally:
            self.on_stop()
