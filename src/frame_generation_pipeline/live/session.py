"""StreamingSession: speech pushed in chunks in, slots of frames and audio out, live (docs/live.md).

Producers (any thread) push 16 kHz audio: `push_audio` (open-ended speech; late frames dropped),
`say` (known length; the start waits until playback cannot stall), `end_of_speech`. The consumer
takes slots with `next_frame`, iteration or `async for`. For one utterance from slot 0 the frames
equal the offline render of the same speech (the exact backend bit for bit).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..checks import require_int
from ..contract import SAMPLE_RATE
from ..errors import StreamError
from ..inputs.templates import TemplateSet, as_templates
from ..models.audio_encoder import AudioEncoder
from ..pipeline import FrameGenerationPipeline
from ..render.generator import InferenceModel
from ..render.prepared import PreparedCache
from .features import FeatureStream
from .rendering import Rendering
from .timeline import DEFAULT_MARGIN, DELAY, DROP, FPS, SLOT_SAMPLES, Clock, LiveFrame, RealClock, RenderRate, SessionStats, start_delay
from .utterance import Utterance, check_samples, frames_for_samples

logger = logging.getLogger(__name__)

_SILENCE = np.zeros(SLOT_SAMPLES, np.float32)


class StreamingSession(Rendering):
    """A live avatar: one model and template set, one timeline of slots, utterances pushed as they come.

    Args:
        model: a loaded ave backend (shared between sessions; calls may come from several threads).
        templates: the template folder (its ping-pong schedule runs on across idle and speech).
        encoder: the ave audio encoder.
        batch_size: speech frames per network call (None: the backend's default).
        realtime: pace slots by `clock` (slot k due at start + k / fps) and apply the policies;
            False renders every slot as fast as it can, dropping nothing (a simulation).
        threaded: in real time, render in a thread of the session's own (False: the caller drives
            `work` itself, as a test on a fake clock does).
        clock: the time source (default: the monotonic clock).
        margin: seconds of slack added to every start delay.
        start_frame: first template of the schedule, as for offline renders.
    """

    def __init__(
        self,
        model: InferenceModel,
        templates: TemplateSet,
        encoder: AudioEncoder,
        batch_size: int | None = None,
        realtime: bool = False,
        threaded: bool = True,
        clock: Clock | None = None,
        margin: float = DEFAULT_MARGIN,
        start_frame: int = 0,
        cache_bytes: int = 64 << 20,
    ) -> None:
        if model.mode.name != "ave":
            raise StreamError(f"live speech needs an ave checkpoint (its features come from the audio encoder), "
                              f"this model is {model.mode.name!r}")
        templates.validate(list(range(start_frame, len(templates))))
        self.model, self.templates, self.encoder = model, templates, encoder
        self.batch_size = max(batch_size or 1, model.streams)
        self.realtime, self.threaded, self.clock = realtime, threaded, clock or RealClock()
        self.margin, self.start_frame = margin, start_frame
        self._renderer: threading.Thread | None = None
        self.rate = RenderRate()
        self.stats = SessionStats()
        self._cache = PreparedCache(templates, cache_bytes)
        self._network = ThreadPoolExecutor(model.streams, thread_name_prefix="live-network")
        self._changed = threading.Condition()
        if realtime:
            self._warm_up()
        self._segments: deque[Utterance | list[int]] = deque()  # utterances, and [n] for n idle slots
        self._open: Utterance | None = None
        self._next_id = 0
        self._slot = 0
        self._anchor: float | None = None
        self._closed = False

    @classmethod
    def from_pipeline(
        cls, pipeline: FrameGenerationPipeline, templates: TemplateSet | str | os.PathLike[str],
        audio_encoder: AudioEncoder | str | os.PathLike[str], use_parsing: bool = False, **options: object,
    ) -> StreamingSession:
        """A session on a loaded pipeline's model and batch size (options as for the class)."""
        if not isinstance(audio_encoder, AudioEncoder):
            audio_encoder = AudioEncoder(audio_encoder, device=pipeline.device)
        options.setdefault("batch_size", pipeline.generator.batch_size)
        return cls(pipeline.model, as_templates(templates, use_parsing), audio_encoder, **options)

    # --- producers --------------------------------------------------------------------------

    def push_audio(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """Add speech to the open utterance (opening one): 16 kHz mono float32 in [-1, 1] or int16."""
        data = check_samples(samples, sample_rate)
        with self._changed:
            self._check_open()
            if self._open is None:
                self._open = self._new_utterance(DROP)
            self._open.add(data)
            self._changed.notify_all()

    def end_of_speech(self) -> None:
        """Close the open utterance: its last frames are rendered with the end's padding."""
        with self._changed:
            self._end_open()

    def say(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
        """Queue a whole utterance (known length); return its duration in seconds."""
        data = check_samples(samples, sample_rate)
        frames_for_samples(len(data), "<speech>")  # refuses speech shorter than 0.2 s now, not later
        with self._changed:
            self._check_open()
            self._end_open()
            utterance = self._new_utterance(DELAY)
            utterance.add(data)
            utterance.end()
            self._changed.notify_all()
        return len(data) / SAMPLE_RATE

    def idle(self, frames: int) -> None:
        """Queue `frames` idle slots (a simulation's gap; in real time gaps are real time); 0 ends the
        current utterance, so that the next follows it at once."""
        frames = require_int(frames, "frames", 0)
        if self.realtime:
            raise StreamError("idle slots are queued only in a simulation; in real time the clock makes them")
        with self._changed:
            self._check_open()
            self._end_open()
            if frames:
                self._segments.append([frames])
            self._changed.notify_all()

    def interrupt(self) -> None:
        """Drop every utterance queued or being pushed (the listener talked over it): the next slot is idle."""
        with self._changed:
            self._open, self._segments = None, deque()
            self._changed.notify_all()

    def close(self, drain: bool = True) -> None:
        """End the session: an open utterance is ended; slots already queued can still be taken
        (`drain`), or are dropped (a viewer that has gone)."""
        with self._changed:
            self._end_open()
            if not drain:
                self._segments.clear()
            self._closed = True
            self._changed.notify_all()

    def _end_open(self) -> None:
        """End the utterance producers are pushing into, if there is one (the lock is held)."""
        if self._open is not None:
            self._open.end()
            self._open = None
            self._changed.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise StreamError("the session is closed: no more audio can be pushed")

    def _new_utterance(self, policy: str) -> Utterance:
        utterance = Utterance(self._next_id, policy, self.clock.now(), FeatureStream(self.encoder))
        self._next_id += 1
        self._segments.append(utterance)
        return utterance

    # --- the consumer -----------------------------------------------------------------------

    def next_frame(self, timeout: float | None = None) -> LiveFrame | None:
        """The next slot of the timeline; None once the session is closed and drained (or, in a
        simulation, when `timeout` seconds pass with nothing to show). In real time the call
        returns when the slot is due and never renders: a frame not finished by then is dropped."""
        self._start_clock()
        deadline = None if timeout is None else self.clock.now() + timeout
        while True:
            with self._changed:
                segment = self._segments[0] if self._segments else None
                if segment is None and self._closed:
                    if self._renderer is None:
                        self._network.shutdown(wait=False)
                    return None
                if segment is None and not self.realtime:
                    if not self._changed.wait(None if deadline is None else max(deadline - self.clock.now(), 0)):
                        return None
                    continue
            if segment is None or isinstance(segment, list) or self._before_start(segment):
                return self._emit(self._idle_slot(segment))
            i = self._slot - segment.start_slot
            if self.realtime:
                self.clock.sleep(self._due(self._slot) - self.clock.now())
            elif not segment.has_frame(i) and not segment.done(i):
                if self.work(segment):
                    continue
                if not self._wait_for_audio(segment, deadline):
                    return None
                continue
            if segment.done(i):
                with self._changed:
                    if self._segments and self._segments[0] is segment:  # else interrupt() dropped it
                        self._segments.popleft()
                continue
            due = self._due(self._slot) if self.realtime else math.inf
            return self._emit(segment.take(i, self._slot, self._template(self._slot), due, self._compose))

    def __iter__(self) -> Iterator[LiveFrame]:
        """Every slot in order until the session is closed and drained."""
        while (frame := self.next_frame()) is not None:
            yield frame

    async def __aiter__(self) -> AsyncIterator[LiveFrame]:
        """`async for`: slots taken in a worker thread, so the event loop keeps running."""
        loop = asyncio.get_running_loop()
        while (frame := await loop.run_in_executor(None, self.next_frame)) is not None:
            yield frame

    def _start_clock(self) -> None:
        if self._anchor is None:
            self._anchor = self.clock.now()
            if self.realtime and self.threaded:
                self._renderer = threading.Thread(target=self._render_loop, name="live-render", daemon=True)
                self._renderer.start()

    def due(self, slot: int) -> float:
        """Clock time at which slot `slot` is shown (real time only)."""
        self._start_clock()
        return self._due(slot)

    def _due(self, slot: int) -> float:
        return self._anchor + slot / FPS

    @property
    def next_slot(self) -> int:
        """The slot the next `next_frame` call returns."""
        return self._slot

    def _emit(self, frame: LiveFrame) -> LiveFrame:
        if self.realtime:
            self.clock.sleep(self._due(frame.slot) - self.clock.now())
        self._slot += 1
        self.stats.slots += 1
        counter = {"speech": "speech_frames", "idle": "idle_frames", "dropped": "dropped_frames"}[frame.kind]
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        return frame

    def _idle_slot(self, segment: Utterance | list[int] | None) -> LiveFrame:
        if isinstance(segment, list):
            with self._changed:
                segment[0] -= 1
                if segment[0] <= 0:
                    self._segments.popleft()
        template = self._template(self._slot)
        return LiveFrame(self._slot, "idle", self.template_image(template), _SILENCE, template)

    def _before_start(self, utterance: Utterance) -> bool:
        """True while the timeline is before the utterance's first slot (assigned on first sight)."""
        self._place(utterance)
        return self._slot < utterance.start_slot

    def _place(self, utterance: Utterance, not_before: int | None = None) -> None:
        """Give the utterance its first slot: the next free one, or in real time its policy's delay
        after its first sample (and never before `not_before`, the previous utterance's end)."""
        with self._changed:
            if utterance.start_slot is not None:
                return
            first = max(self._slot, not_before or 0)
            if self.realtime:
                delay = start_delay(utterance.policy, utterance.known_frames(), self.rate, self.margin)
                start = max(first, math.ceil((utterance.arrived + delay - self._anchor) * FPS))
                utterance.start(start, self._due(start) - utterance.arrived)
            else:  # a simulation: latency counts from the utterance's turn, not from when it was queued
                utterance.arrived = max(utterance.arrived, self.clock.now())
                utterance.start(first, 0.0)
            self.stats.utterances.append(utterance.report)

    def _wait_for_audio(self, utterance: Utterance, deadline: float | None) -> bool:
        """Wait until more speech (or its end) arrives; False if `deadline` passed first."""
        with self._changed:
            if utterance.more_audio_pending():
                return True
            remaining = None if deadline is None else max(deadline - self.clock.now(), 0)
            return self._changed.wait(remaining)

    def state_bytes(self) -> int:
        """Memory the session holds for frames, speech and templates (bounded; see docs/live.md)."""
        with self._changed:
            utterances = [segment for segment in self._segments if isinstance(segment, Utterance)]
        return self._cache.nbytes + sum(utterance.state_bytes() for utterance in utterances)
