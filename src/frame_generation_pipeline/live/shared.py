"""What every live session of one model shares: the model (its turns handed out fairly by a
Scheduler), the audio encoder, the template set with its one bounded cache of cropped templates,
and one warm-up.

A server builds one `LiveModel` and gives it to each visitor's session, so that N visitors hold one
copy of the cropped templates, the model warms up once, and sessions that have speech to render
take turns at the network, the most urgent first (scheduler.py). Each session joins the LiveModel's
scheduler, so that a session placing an utterance while N sessions have speech to render expects
1/N of the model.

It also keeps the avatar at rest: each template's rest frame (render/rest.py), computed by a thread
of its own (rest.py) from the end of its warm-up (which it must not slow down, nor find the template
cache filled by), where `rest_in_background`, while no session has speech to render.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import StreamError
from ..inputs.templates import TemplateSet
from ..models.backends.base import InferenceModel
from ..models.rest_cache import RestStore
from ..models.silence import rest_window
from ..models.speech_encoder import SpeechEncoder
from ..render.blend import FEATHER, Blend
from ..render.cropped import CroppedCache, paste
from ..render.rest import DEFAULT_REST_BYTES, RestFrames
from ..render.streams import NetworkStreams
from ..render.template_cache import TemplateCache
from .pacing import RenderRate
from .rest import RestFiller
from .scheduler import Scheduler
from .slot import Clock, RealClock

#: Timed batches (and encoder windows) of the warm-up: one alone varies by tens of per cent.
WARM_UP_ROUNDS = 3
#: Seconds `close` waits for the rest frames' thread to finish its batch.
CLOSE_SECONDS = 5.0
#: Default budget of the cropped-template cache (shared by every session of a LiveModel).
DEFAULT_CACHE_BYTES = 64 << 20


class LiveModel:
    """The model, encoder and templates of live sessions, with the state they can share.

    Args:
        model: a loaded backend of the audio model's mode.
        templates: the template folder (checked here once, for every session).
        encoder: the audio model: the ave encoder, or a hubert model for a hubert checkpoint.
        cache_bytes: budget of the cropped-template cache.
        on_batch: called with (frames, seconds) after every network batch (a server's metrics).
        template_cache: where the network's template half is kept per template (None: the whole network).
        rest_in_background: compute every template's rest frame in a thread once the model is warmed
            up (a real-time session's first `warm_up`; else only when a simulation shows one, or once
            `rest_filler.start()` is called).
        rest_bytes: memory for rest frames (the rest are read back from disk where they are kept).
    """

    def __init__(self, model: InferenceModel, templates: TemplateSet, encoder: SpeechEncoder[Any],
                 cache_bytes: int = DEFAULT_CACHE_BYTES, on_batch: Callable[[int, float], None] | None = None,
                 template_cache: TemplateCache | None = None, rest_in_background: bool = True,
                 rest_bytes: int = DEFAULT_REST_BYTES) -> None:
        if model.mode.name != encoder.mode.name:
            kind = "an ave checkpoint (its features come from the audio encoder)" if encoder.mode.name == "ave" else \
                "a hubert checkpoint (its features come from the hubert model)"
            raise StreamError(f"live speech needs {kind}, this model is {model.mode.name!r}")
        templates.validate(list(range(len(templates))))
        self.model, self.templates, self.encoder, self.on_batch = model, templates, encoder, on_batch
        #: The fidelity check's dB of the model's precision on these templates, where one was made (reports).
        self.fidelity_db: float | None = None
        self.template_cache = template_cache
        self.cache = CroppedCache(templates, cache_bytes)
        self.scheduler = Scheduler()
        #: One thread per network stream: part i of every batch runs on stream i, whoever asks, so
        #: that what a stream's first call at a batch shape costs is paid once, by the warm-up.
        self._streams = NetworkStreams(model, "live-network", template_cache)
        self._warm_up_lock = threading.Lock()
        self._measured: dict[int, RenderRate] = {}
        self.rest = RestFrames(self.infer, self.network_inputs, lambda: rest_window(encoder),
                               RestStore.of(model, templates, encoder), rest_bytes)
        self.rest_filler = RestFiller(self.rest, self.scheduler, len(templates), model.streams)
        self._rest_in_background = rest_in_background

    def template_image(self, template: int) -> np.ndarray:
        """The decoded image of template `template` (what an idle slot shows)."""
        return self.cache.get(template).template.image

    def idle_image(self, template: int, blend: Blend = FEATHER, compute: bool = False) -> tuple[np.ndarray, bool]:
        """What an idle slot on `template` shows and whether it is the raw template: its rest frame pasted
        as `blend` says (computed now, in a turn at the model, when `compute` and not yet kept), or
        the template as it is while its rest frame is not computed (the background thread is told)."""
        pixels = self.rest.get(template)
        if pixels is None and compute:
            with self.scheduler.turn():
                self.rest.compute([template])
            pixels = self.rest.get(template)
        if pixels is None:
            self.rest_filler.hint(template)
            return self.template_image(template), True
        return self.compose(template, pixels, blend), False

    def compose(self, template: int, pixels: np.ndarray, blend: Blend = FEATHER) -> np.ndarray:
        """Generated 320x320 pixels pasted into template `template`'s frame, joined as `blend` says."""
        return paste(self.cache.get(template), pixels, blend)

    def network_inputs(self, templates: list[int]) -> np.ndarray:
        """The network image inputs (B, 6, 320, 320) of the given templates."""
        return np.stack([self.cache.get(template).network_input for template in templates])

    def infer(self, images: np.ndarray, audio: np.ndarray, templates: list[int] | None = None) -> np.ndarray:
        """The network on a batch of `templates` (through the template cache; None: not templates,
        run whole), split over the model's streams, which run at once, each on its own thread (as in
        the offline generator). Call it in a turn (`scheduler`), so that sessions take turns."""
        return self._streams.split(images, audio, self.templates, templates)

    def batch_done(self, frames: int, seconds: float) -> None:
        """Report a finished batch to `on_batch`, if one was given."""
        if self.on_batch is not None:
            self.on_batch(frames, seconds)

    def warm_up(self, batch_size: int, clock: Clock | None = None) -> RenderRate:
        """The model's RenderRate at `batch_size`, shared by every real-time session of this
        LiveModel: seeded by timing WARM_UP_ROUNDS batches of the network and of audio encoder
        windows after what the first calls cost once (`_first_calls`, untimed), so that the first
        reply is planned and paced like the next; then updated by every batch
        of every session, so that a session placing speech plans with the model's latest speed
        under the load of now, not with its own old one. (Two sessions updating it at once may
        lose one sample of the moving average: harmless.)"""
        with self._warm_up_lock:
            if batch_size not in self._measured:
                self._measured[batch_size] = self._measure(batch_size, clock or RealClock())
            if self._rest_in_background:
                self.rest_filler.start()  # once: later calls do nothing
            return self._measured[batch_size]

    def _first_calls(self, batch_size: int) -> None:
        """Pay, untimed, for what the first calls cost once: every batch size up to `batch_size` (so
        every part size on every stream) on templates 0, 1, ..., twice where the template cache splits
        the network (a template's first visit, then the rest from its kept half), and the audio encoder."""
        passes = 2 if self.template_cache is not None and self.template_cache.splits(self.model) else 1
        for size in range(1, batch_size + 1):
            templates = [index % len(self.templates) for index in range(size)]
            images, audio = self.network_inputs(templates), np.zeros((size, *self.model.mode.audio_shape), np.float32)
            for _ in range(passes):
                with self.scheduler.turn():
                    self.infer(images, audio, templates)
        self.encoder.warm_up()

    def _measure(self, batch_size: int, clock: Clock) -> RenderRate:
        self._first_calls(batch_size)
        rate = RenderRate()
        audio = np.zeros((batch_size, *self.model.mode.audio_shape), np.float32)
        network = encoding = 0.0
        windows = 0
        for round_ in range(1, 1 + WARM_UP_ROUNDS):
            # speech's own path, on templates not yet in the template cache: what a first cycle costs
            templates = [(round_ * batch_size + index) % len(self.templates) for index in range(batch_size)]
            images = self.network_inputs(templates)
            with self.scheduler.turn():
                started = clock.now()
                self.infer(images, audio, templates)
                finished = clock.now()
            windows += self.encoder.warm_up()
            network += finished - started
            encoding += clock.now() - finished
        rate.add(network / WARM_UP_ROUNDS, batch_size)
        rate.add_encoding(encoding, windows)
        return rate

    def close(self) -> None:
        """Let the network threads and the rest frames' thread go (when no session uses the model any more)."""
        self.rest_filler.stop()
        self.rest_filler.join(CLOSE_SECONDS)  # it may be in a batch: not in the network when the process exits
        self._streams.close(wait=False)
