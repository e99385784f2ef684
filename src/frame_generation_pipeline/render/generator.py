"""FrameRenderer: template frames + audio features -> finished video frames, lazily and in order.

Each output frame goes through three stages: crop (decode the template, crop, resize, mask,
build the network input; cached per template), infer (batched network calls, as many at once
as the model has streams), compose (to pixels, paste back). Prepare runs ahead of the network and
compose behind it in worker threads (OpenCV and the backends release the GIL), with a bounded
number of frames in flight: frames are yielded one at a time and memory does not grow with the
video's length.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Container, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..checks import require_int
from ..contract import get_mode
from ..errors import ConfigurationError
from ..inputs.features import AudioFeatures, as_features
from ..inputs.landmarks import CropBox
from ..inputs.templates import TemplateSet, as_templates
from ..models.backends.base import InferenceModel
from .blend import NO_BLEND, Blend
from .cropped import CroppedCache, CroppedTemplate
from .cropped import compose as compose_frame
from .streams import NetworkStreams
from .template_cache import TemplateCache

__all__ = ["FrameRenderer", "InferenceModel", "RenderedFrame"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedFrame:
    """One finished output frame and where it came from.

    `network_input`, `audio` and `network_output` are filled only for frames asked for with
    `keep_tensors` (float32, without the batch axis).
    """

    index: int
    template_index: int
    box: CropBox
    image: np.ndarray
    network_input: np.ndarray | None = None
    audio: np.ndarray | None = None
    network_output: np.ndarray | None = None


class _InFlight:
    """The frames of one render between its three steps: crop (templates decoded and cropped in
    worker threads), infer (a batch's network call, `streams` at once) and compose (pasted back in
    worker threads), each a queue of futures in schedule order."""

    def __init__(self, renderer: FrameRenderer, templates: TemplateSet, features: AudioFeatures, schedule: list[int],
                 first: int, keep_tensors: Container[int], blend: Blend) -> None:
        self.model, self.template_cache, self.templates, self.features = (renderer.model, renderer.template_cache,
                                                                          templates, features)
        self.schedule, self.first, self.keep_tensors, self.blend = schedule, first, keep_tensors, blend
        self.cache = CroppedCache(templates, renderer.cache_bytes)
        self.workers = ThreadPoolExecutor(renderer.workers, thread_name_prefix="frame-worker")
        self.network = NetworkStreams(renderer.model, "frame-network", renderer.template_cache)
        self.cropping: deque[Future[CroppedTemplate]] = deque()
        self.inferring: deque[tuple[range, list[CroppedTemplate], np.ndarray, Future[np.ndarray]]] = deque()
        self.composing: deque[tuple[partial[RenderedFrame], Future[np.ndarray]]] = deque()
        self.queued = 0

    def crop(self, until: int) -> None:
        """Queue the cropping of the templates of positions up to `until`."""
        while self.queued < until:
            self.cropping.append(self.workers.submit(self.cache.get, self.schedule[self.queued]))
            self.queued += 1

    def infer(self, positions: range) -> None:
        """Start the network call of the batch at `positions`; compose the oldest batch once `streams` are running."""
        cropped = [self.cropping.popleft().result() for _ in positions]
        indices = range(self.first + positions.start, self.first + positions.stop)
        audio = self.features.windows(indices)
        inputs = np.stack([item.network_input for item in cropped])
        call = self.network.submit(inputs, audio, self.templates, [item.template.index for item in cropped])
        self.inferring.append((indices, cropped, audio, call))
        if len(self.inferring) == self.model.streams:
            self.compose()

    def compose(self) -> None:
        """Queue the paste of each frame of the oldest batch in the network, once its call returns."""
        indices, cropped, audio, outputs = self.inferring.popleft()
        for index, item, window, output in zip(indices, cropped, audio, outputs.result()):
            keep = index in self.keep_tensors
            record = partial(RenderedFrame, index, item.template.index, item.template.box,
                             network_input=item.network_input if keep else None, audio=window if keep else None,
                             network_output=output if keep else None)
            self.composing.append((record, self.workers.submit(compose_frame, item, output, self.blend)))

    def finished(self, keep: int) -> Iterator[RenderedFrame]:
        """The oldest composed frames, in order, until `keep` are left composing."""
        while len(self.composing) > keep:
            record, image = self.composing.popleft()
            yield record(image=image.result())

    def close(self) -> None:
        """Stop the threads (what is queued and not started is cancelled)."""
        self.network.close(wait=True)
        self.workers.shutdown(wait=True, cancel_futures=True)


class FrameRenderer:
    """Renders output frames from a loaded model.

    Args:
        unet_model: a loaded backend (or another InferenceModel, such as a test's stand-in).
        mode: the audio mode; must be the model's (None takes the model's).
        batch_size: frames per network call; with the exact torch backend frames do not depend on it.
        workers: threads that decode and crop templates ahead of the network and paste
            results behind it.
        cache_bytes: memory for cropped templates kept for when the ping-pong order returns.
        template_cache: where the network's template half is kept per template (it may be shared
            with other generators and live sessions); None runs the whole network every frame.
    """

    def __init__(
        self,
        unet_model: InferenceModel,
        mode: str | None = None,
        batch_size: int = 1,
        workers: int = 2,
        cache_bytes: int = 256 << 20,
        template_cache: TemplateCache | None = None,
    ) -> None:
        if mode is not None and get_mode(mode).name != unet_model.mode.name:
            raise ConfigurationError(f"mode {mode!r} does not match the model's mode {unet_model.mode.name!r}")
        self.model = unet_model
        self.mode = unet_model.mode
        self.batch_size = require_int(batch_size, "batch_size", 1)
        self.workers = require_int(workers, "workers", 1)
        self.cache_bytes = require_int(cache_bytes, "cache_bytes", 0)
        self.template_cache = template_cache

    def render(
        self,
        templates: TemplateSet | str | os.PathLike[str],
        features: AudioFeatures | np.ndarray | str | os.PathLike[str],
        start_frame: int = 0,
        keep_tensors: Container[int] = (),
        frame_count: int | None = None,
        first_frame: int = 0,
        blend: Blend = NO_BLEND,
    ) -> Iterator[RenderedFrame]:
        """Lazily render one RenderedFrame per feature row (`frame_count` of them from `first_frame`:
        a piece of a longer video, with that video's schedule and audio windows), in order.

        `templates` is a TemplateSet or a template folder; `features` an AudioFeatures, an array
        or a feature file. Templates used by the schedule are checked before the first frame is
        rendered. Parsing is applied when `templates` was opened with a parsing folder; the
        generated square is pasted as `blend` says (the exact paste by default). Template
        decoding and crop preparation run ahead of the network, pasting behind it, in `workers`
        threads; the model's `streams` network calls run at once, in threads of their own. At
        most a few batches are in flight, so memory does not grow with the number of frames.
        """
        templates = as_templates(templates)
        features = as_features(features, self.mode)
        if features.mode.name != self.mode.name:
            raise ConfigurationError(f"features are for mode {features.mode.name!r}, the model is {self.mode.name!r}")
        require_int(start_frame, "start_frame", 0)
        first = require_int(first_frame, "first_frame", 0)
        available = len(features) - first
        total = available if frame_count is None else min(require_int(frame_count, "frame_count", 1), available)
        schedule = templates.schedule(first + total, start_frame)[first:]
        templates.validate(schedule)
        yield from self._frames(templates, features, schedule, first, keep_tensors, blend)

    def _frames(self, templates: TemplateSet, features: AudioFeatures, schedule: list[int], first: int,
                keep_tensors: Container[int], blend: Blend) -> Iterator[RenderedFrame]:
        """Prepare ahead, infer a batch, compose behind, with at most `ahead` frames composing."""
        total, ahead = len(schedule), (self.model.streams + 1) * self.batch_size
        flight = _InFlight(self, templates, features, schedule, first, keep_tensors, blend)
        try:
            for batch_start in range(0, total, self.batch_size):
                positions = range(batch_start, min(batch_start + self.batch_size, total))
                flight.crop(min(positions.stop + ahead, total))
                flight.infer(positions)
                yield from flight.finished(keep=ahead)
            while flight.inferring:
                flight.compose()
            yield from flight.finished(keep=0)
            logger.debug("template cache: %d hits, %d misses", flight.cache.hits, flight.cache.misses)
        finally:
            flight.close()

    def iter_frames(
        self,
        templates: TemplateSet | str | os.PathLike[str],
        features: AudioFeatures | np.ndarray | str | os.PathLike[str],
        start_frame: int = 0,
        frame_count: int | None = None,
        first_frame: int = 0,
        blend: Blend = NO_BLEND,
    ) -> Generator[np.ndarray, None, None]:
        """Lazily yield the finished frames (HxWx3 uint8 BGR), one per feature row."""
        for rendered in self.render(templates, features, start_frame, frame_count=frame_count, first_frame=first_frame,
                                    blend=blend):
            yield rendered.image
