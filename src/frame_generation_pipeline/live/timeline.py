"""The timeline of one live session: what is queued (utterances and idle runs), the slot shown next,
the clock's anchor, where each utterance starts, and the counts of what was shown.

Slot k is due at anchor + k / fps. Idle slots show the template of schedule position k and carry
silence; speech slots show frame i of an utterance that starts at slot s (k = s + i) and carry its
samples [i * hop, (i + 1) * hop). Audio and video come from the same slots, so they cannot drift.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..errors import StreamError
from ..inputs.templates import ping_pong_index
from ..models.silence import RunningOn
from .pacing import DELAY, DROP
from .scheduler import Seat
from .slot import FPS, Clock, LiveFrame
from .stats import SessionStats
from .utterance import Utterance


@dataclass
class IdleRun:
    """Idle slots queued by a simulation (`remaining` of them still to show)."""

    remaining: int


Segment = Utterance | IdleRun


class Timeline:
    """Segments in slot order, filled by producers and emptied by the consumer, under one lock.

    `changed` is that lock; it is notified whenever something is queued, ended or closed. The
    session's need (speech to render) is reported to its `seat` under it, whenever it may change.
    """

    def __init__(self, clock: Clock, template_count: int, start_frame: int, seat: Seat) -> None:
        self.clock, self.template_count, self.start_frame, self.seat = clock, template_count, start_frame, seat
        self.changed = threading.Condition()
        self.stats = SessionStats()
        self.slot = 0
        self.anchor: float | None = None
        self.closed = False
        self._segments: deque[Segment] = deque()
        self._open: Utterance | None = None
        self._next_id = 0

    # --- producers --------------------------------------------------------------------------

    def push(self, samples: np.ndarray, features: Callable[[], RunningOn]) -> None:
        """Add speech to the open utterance (opening one, under the drop policy)."""
        with self.changed:
            self._check_open()
            if self._open is None:
                self._open = self._new_utterance(DROP, features())
            self._open.add(samples)
            self._report_need()
            self.changed.notify_all()

    def say(self, samples: np.ndarray, features: RunningOn) -> None:
        """Queue a whole utterance (the delay policy) after ending the open one."""
        with self.changed:
            self._check_open()
            self.end_open()
            utterance = self._new_utterance(DELAY, features)
            utterance.add(samples)
            utterance.end()
            self._report_need()
            self.changed.notify_all()

    def idle(self, frames: int) -> None:
        """End the open utterance, then queue `frames` idle slots (none for 0)."""
        with self.changed:
            self._check_open()
            self.end_open()
            if frames:
                self._segments.append(IdleRun(frames))
            self.changed.notify_all()

    def end_open(self) -> None:
        """End the utterance producers are pushing into, if there is one."""
        with self.changed:
            if self._open is not None:
                self._open.end()
                self._open = None
                self.changed.notify_all()

    def close(self, drain: bool) -> None:
        """No more speech: queued slots can still be taken (`drain`), or are dropped."""
        with self.changed:
            self.end_open()
            if not drain:
                self._segments.clear()
                self._report_need()
            self.closed = True
            self.changed.notify_all()

    @property
    def latest_utterance(self) -> int | None:
        """The number of the utterance opened last (they count up from 0); None before the first."""
        with self.changed:
            return self._next_id - 1 if self._next_id else None

    def _check_open(self) -> None:
        if self.closed:
            raise StreamError("the session is closed: no more audio can be pushed")

    def _new_utterance(self, policy: str, features: RunningOn) -> Utterance:
        utterance = Utterance(self._next_id, policy, self.clock.now(), features)
        self._next_id += 1
        self._segments.append(utterance)
        return utterance

    # --- the consumer and the renderer ------------------------------------------------------

    def head(self) -> Segment | None:
        """The segment the next slot belongs to (None when nothing is queued)."""
        with self.changed:
            return self._segments[0] if self._segments else None

    def pop_head(self, segment: Segment) -> None:
        """`segment`, the head, is over (unless `interrupt` dropped it meanwhile)."""
        with self.changed:
            if self._segments and self._segments[0] is segment:
                self._segments.popleft()
                self._report_need()

    def interrupt(self) -> None:
        """Drop every utterance queued or being pushed: the next slot is idle."""
        with self.changed:
            self._open = None
            self._segments.clear()
            self._report_need()
            self.changed.notify_all()

    def drained(self) -> bool:
        """True once the session is closed and nothing is left to show."""
        with self.changed:
            return self.closed and not self._segments

    def utterances(self) -> list[Utterance]:
        """The queued utterances, in order."""
        with self.changed:
            return [segment for segment in self._segments if isinstance(segment, Utterance)]

    def report_need(self) -> None:
        """Report to the seat whether a queued utterance has frames left to render (or speech still
        coming): after each step of rendering, and whenever the queue changes."""
        with self.changed:
            self._report_need()

    def _report_need(self) -> None:
        speaking = any(isinstance(segment, Utterance) and segment.has_frames_to_render() for segment in self._segments)
        self.seat.report_need(speaking)

    def take_idle(self, run: IdleRun) -> None:
        """One slot of an idle run is shown (the run ends with its last)."""
        with self.changed:
            run.remaining -= 1
            if run.remaining <= 0 and self._segments and self._segments[0] is run:
                self._segments.popleft()

    def start_clock(self) -> bool:
        """Anchor slot 0 at the clock's now, once; True the first time."""
        with self.changed:
            if self.anchor is not None:
                return False
            self.anchor = self.clock.now()
            return True

    def due(self, slot: int) -> float:
        """Clock time at which slot `slot` is shown."""
        assert self.anchor is not None  # start() set it
        return self.anchor + slot / FPS

    def template(self, slot: int) -> int:
        """The template of slot `slot` (the ping-pong schedule runs on across idle and speech)."""
        return ping_pong_index(slot, self.template_count, self.start_frame)

    def place(self, utterance: Utterance, plan: Callable[[], float] | None, not_before: int | None = None) -> None:
        """Give the utterance its first slot, once, whichever thread asks first: the next free one
        (and never before `not_before`, the previous utterance's end), or in real time `plan()`
        seconds after its first sample; a simulation (plan None) counts its latency from its turn
        instead. `plan` runs under the lock, only for an utterance not placed yet (it may set the
        utterance's stride), so that the viewer and the render thread cannot both place it."""
        with self.changed:
            if utterance.start_slot is not None:
                return
            first = max(self.slot, not_before or 0)
            if plan is not None:
                delay = plan()
                assert self.anchor is not None  # a real-time timeline starts before its first utterance
                start = max(first, math.ceil((utterance.arrived + delay - self.anchor) * FPS))
                report = utterance.start(start, self.due(start) - utterance.arrived)
            else:
                report = utterance.start(first, 0.0, turn=self.clock.now())
            self.stats.utterances.append(report)

    def advance(self, frame: LiveFrame) -> LiveFrame:
        """Count `frame` as shown and move on to the next slot (both at once, under the lock)."""
        with self.changed:
            self.slot += 1
            self.stats.count(frame.kind, frame.repeated, frame.raw)
        return frame

    @property
    def next_slot(self) -> int:
        """The slot shown next (read under the lock)."""
        with self.changed:
            return self.slot

    def snapshot(self) -> SessionStats:
        """A copy of the counts so far, taken under the lock: they add up to the slots shown."""
        with self.changed:
            return replace(self.stats, utterances=copy.copy(self.stats.utterances))

    def wait(self, timeout: float | None, unless: Callable[[], bool] | None = None) -> bool:
        """Wait until something changes (at once if `unless()` holds, checked under the lock);
        False if `timeout` seconds passed first."""
        with self.changed:
            if unless is not None and unless():
                return True
            return self.changed.wait(timeout)
