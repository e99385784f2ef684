"""StreamingSession: speech pushed in chunks in, slots of frames and audio out, live (docs/live.md).

Producers (any thread) push 16 kHz audio: `push_audio` (open-ended speech; late frames dropped),
`say` (known length; the start waits until playback cannot stall), `end_of_speech`. The consumer
takes slots with `next_frame`, iteration or `async for`. For one utterance from slot 0 the frames
equal the offline render of the same speech (the exact backend bit for bit).

A session is composed of a Timeline (timeline.py: what is queued and shown), a Renderer (renderer.py:
its utterances' features and frames), a driver (drivers.py: real time or simulation) and a LiveModel
(shared.py: model, encoder, templates and their cache, possibly shared with other sessions), whose
Scheduler (scheduler.py) the session joins: through its Seat the timeline reports the session's need
and the renderer asks for turns.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np

from ..audio.mel import frames_for_samples
from ..checks import require_int
from ..contract import SAMPLE_RATE
from ..errors import AudioError, StreamError
from ..inputs.templates import TemplateSet, as_templates, ping_pong_schedule
from ..models.hubert import HubertWindows
from ..models.silence import RunningOn, utterance_frames
from ..models.speech_encoder import SpeechEncoder
from ..pipeline import FrameGenerationPipeline
from ..render.blend import FEATHER, Blend
from ..render.generator import InferenceModel
from ..render.template_cache import TemplateCache
from .drivers import Driver, RealtimeDriver, SimulatedDriver
from .pacing import DEFAULT_MARGIN, RenderRate
from .renderer import Renderer
from .rest import check_idle
from .shared import DEFAULT_CACHE_BYTES, LiveModel
from .slot import RENDERED, Clock, LiveFrame, RealClock
from .stats import SessionStats
from .timeline import Timeline
from .utterance import Utterance, check_samples

logger = logging.getLogger(__name__)


def live_batch_size(batch_size: int | None, model: InferenceModel) -> int:
    """A session's frames per network call: `batch_size` (None: 1), at least one per stream of `model`."""
    return max(batch_size or 1, model.streams)


class StreamingSession:
    """A live avatar: one model and template set, one timeline of slots, utterances pushed as they come.

    Args:
        model: a loaded backend of the audio model's mode (shared between sessions; calls may come
            from several threads).
        templates: the template folder (its ping-pong schedule runs on across idle and speech).
        encoder: the ave audio encoder, or a HubertEncoder (shared between sessions too).
        batch_size: speech frames per network call (None: the backend's default).
        realtime: pace slots by `clock` (slot k due at start + k / fps) and apply the policies;
            False renders every slot as fast as it can, dropping nothing (a simulation).
        threaded: in real time, render in a thread of the session's own (False: the caller drives
            `work` itself, as a test on a fake clock does).
        clock: the time source (default: the monotonic clock).
        margin: seconds of slack added to every start delay.
        start_frame: first template of the schedule, as for offline renders.
        cache_bytes: budget of the cropped-template cache (when the session has its own).
        shared: the LiveModel of `model`, `templates` and `encoder` that other sessions use too (its
            cache, warm-up and turns at the model); None builds one of the session's own.
        blend: how the generated square joins the template, as for offline renders (feathered by
            default; NO_BLEND: the exact paste, upstream's).
        hubert: how a hubert model encodes open speech (window, context, lookahead; docs/live.md).
        template_cache: where the network's template half is kept per template, when the session
            has its own LiveModel (a shared one brings its own; None: the whole network every frame).
        half_rate: in real time, render every other (or every third) slot of an utterance, each image
            shown in the slots up to the next, where the measured speed is below real time: open
            speech, and known-length speech that would wait over pacing.MAX_CATCH_UP_SECONDS for the full
            rate (False: every slot; open speech drops what is late, known-length speech waits).
        idle: what idle slots show: "rendered" (each template's rest frame, the render of silence;
            an utterance's speech runs on into silence until its frames reach it) or "template" (the
            templates as they are, utterances ending with their speech, as before; docs/live.md).
    """

    def __init__(
        self,
        model: InferenceModel,
        templates: TemplateSet,
        encoder: SpeechEncoder[Any],
        batch_size: int | None = None,
        realtime: bool = False,
        threaded: bool = True,
        clock: Clock | None = None,
        margin: float = DEFAULT_MARGIN,
        start_frame: int = 0,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        shared: LiveModel | None = None,
        blend: Blend = FEATHER,
        hubert: HubertWindows | None = None,
        template_cache: TemplateCache | None = None,
        half_rate: bool = True,
        idle: str = RENDERED,
    ) -> None:
        if shared is not None and (shared.model is not model or shared.templates is not templates
                                   or shared.encoder is not encoder):
            raise StreamError("`shared` is a LiveModel of another model, template set or encoder")
        ping_pong_schedule(0, len(templates), start_frame)  # refuses a start frame outside the templates
        self.idle_shows = check_idle(idle)
        rest_ahead = realtime and idle == RENDERED  # a simulation computes each rest frame when it shows it
        self._owns_live = shared is None
        self.live = shared or LiveModel(model, templates, encoder, cache_bytes, template_cache=template_cache,
                                        rest_in_background=rest_ahead)
        self.model, self.templates, self.encoder = model, templates, encoder
        self.batch_size = live_batch_size(batch_size, model)
        self.realtime, self.threaded, self.clock = realtime, threaded, clock or RealClock()
        self.margin, self.start_frame, self.hubert = margin, start_frame, hubert
        self.seat = self.live.scheduler.join()
        self.timeline = Timeline(self.clock, len(templates), start_frame, self.seat)
        rate = self.live.warm_up(self.batch_size, self.clock) if realtime else RenderRate()
        self.renderer = Renderer(self.live, self.timeline.template, self.clock, self.batch_size, rate, self.seat, half_rate)
        self.driver: Driver = (
            RealtimeDriver(self.timeline, self.renderer, self.live, margin, threaded, self._release, blend, idle)
            if realtime else SimulatedDriver(self.timeline, self.renderer, self.live, blend, idle))

    @classmethod
    def from_pipeline(
        cls, pipeline: FrameGenerationPipeline, templates: TemplateSet | str | os.PathLike[str],
        audio_encoder: SpeechEncoder[Any] | str | os.PathLike[str], use_parsing: bool = False, **options: Any,
    ) -> StreamingSession:
        """A session on a loaded pipeline's model for `templates` (`model_for`) and its batch size (options
        as for the class)."""
        if isinstance(audio_encoder, (str, os.PathLike)):
            audio_encoder = pipeline.audio_model(audio_encoder)
        templates = as_templates(templates, use_parsing)
        model = pipeline.model_for(templates, audio_encoder)  # precision auto: its ladder walked on these templates first
        options.setdefault("batch_size", pipeline.batch_of(model))
        options.setdefault("template_cache", pipeline.template_cache)
        session = cls(model, templates, audio_encoder, **options)
        session.live.fidelity_db = pipeline.fidelity_db(templates, audio_encoder)
        return session

    @classmethod
    def on(cls, shared: LiveModel, **options: Any) -> StreamingSession:
        """A session on a shared LiveModel (options as for the class)."""
        return cls(shared.model, shared.templates, shared.encoder, shared=shared, **options)

    @property
    def stats(self) -> SessionStats:
        """Counts and timings so far (a copy: its counts add up to the slots shown)."""
        return self.timeline.snapshot()

    @property
    def closed(self) -> bool:
        """True once `close` was called (no more speech can be pushed)."""
        return self.timeline.closed

    @property
    def rate(self) -> RenderRate:
        """The measure of rendering speed the session plans with (in real time, its LiveModel's, shared
        by the LiveModel's real-time sessions)."""
        return self.renderer.rate

    # --- producers --------------------------------------------------------------------------

    def push_audio(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """Add speech to the open utterance (opening one): 16 kHz mono float32 in [-1, 1] or int16."""
        self.timeline.push(check_samples(samples, sample_rate), lambda: self._rows(self.encoder.stream(False, self.hubert)))

    def end_of_speech(self) -> None:
        """Close the open utterance: its last frames are rendered with the silence that follows it (with
        idle="template", with the end's padding)."""
        self.timeline.end_open()

    def say(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
        """Queue a whole utterance (known length); return its duration in seconds."""
        data = check_samples(samples, sample_rate)
        frames_for_samples(len(data), "<speech>")  # refuses speech shorter than 0.2 s now, not later
        self.timeline.say(data, self._rows(self.encoder.stream(True, self.hubert)))
        return len(data) / SAMPLE_RATE

    @property
    def latest_utterance(self) -> int | None:
        """The number of the utterance `push_audio` or `say` opened last (its slots' LiveFrame.utterance);
        None before the first."""
        return self.timeline.latest_utterance

    def _rows(self, stream: Any) -> RunningOn:
        """An utterance's feature rows, running on into silence at its end where idle slots are rendered."""
        return RunningOn(stream, self.encoder, tail=self.idle_shows == RENDERED)

    def frames_for(self, samples: int) -> int:
        """Frames an utterance of `samples` samples shows (its run into silence included; 0 when too
        short to render)."""
        try:
            return utterance_frames(self.encoder, samples, self.idle_shows == RENDERED)
        except AudioError:
            return 0

    def idle(self, frames: int) -> None:
        """Queue `frames` idle slots (a simulation's gap; in real time gaps are real time); 0 ends the
        current utterance, so that the next follows it at once."""
        frames = require_int(frames, "frames", 0)
        if self.realtime:
            raise StreamError("idle slots are queued only in a simulation; in real time the clock makes them")
        self.timeline.idle(frames)

    def interrupt(self) -> None:
        """Drop every utterance queued or being pushed (the listener talked over it): the next slot is idle."""
        self.timeline.interrupt()

    def close(self, drain: bool = True) -> None:
        """End the session: an open utterance is ended; slots already queued can still be taken
        (`drain`), or are dropped (a viewer that has gone)."""
        self.timeline.close(drain)

    def join(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` seconds for the session's render thread to end (after `close`)."""
        self.driver.join(timeout)

    def _release(self) -> None:
        """Nothing renders any more: the session leaves the model (a LiveModel of its own lets its threads go)."""
        self.seat.leave()
        if self._owns_live:
            self.live.close()

    # --- the consumer -----------------------------------------------------------------------

    def next_frame(self, timeout: float | None = None) -> LiveFrame | None:
        """The next slot of the timeline; None once the session is closed and drained (or, in a
        simulation, when `timeout` seconds pass with nothing to show). In real time the call
        returns when the slot is due and never renders: a frame not finished by then is dropped."""
        self._start_clock()
        frame = self.driver.next_frame(timeout)
        if frame is None and self.timeline.drained() and not self.driver.rendering():
            self._release()
        return frame

    def work(self, utterance: Utterance | None = None) -> bool:
        """One step of rendering (a real-time session whose caller drives it, as a test on a fake
        clock does); False when there was nothing to do."""
        self._start_clock()
        return self.driver.work(utterance)

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
        if self.timeline.start_clock():
            self.driver.start()

    def due(self, slot: int) -> float:
        """Clock time at which slot `slot` is shown (real time only)."""
        self._start_clock()
        return self.timeline.due(slot)

    @property
    def next_slot(self) -> int:
        """The slot the next `next_frame` call returns."""
        return self.timeline.next_slot

    def template_image(self, template: int) -> np.ndarray:
        """The decoded image of template `template` as it is."""
        return self.live.template_image(template)

    def idle_image(self, template: int) -> np.ndarray:
        """What an idle slot on template `template` shows now (in real time a rest frame not yet kept
        is not computed here: the template as it is)."""
        return self.driver.idle_image(template)[0]

    def state_bytes(self) -> int:
        """Memory the session holds for frames, speech and templates (bounded; see docs/live.md);
        a shared cache is counted in full (it is the same for every session that shares it)."""
        return self.live.cache.nbytes + sum(utterance.state_bytes() for utterance in self.timeline.utterances())
