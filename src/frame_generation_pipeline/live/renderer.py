"""The rendering of one live session: an utterance's pushed speech into features, its frames rendered
ahead of their slots on the shared model, frames that cannot be on time skipped, its speed measured."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..render.arithmetic import to_pixels
from .shared import LiveModel
from .timeline import Clock, RenderRate
from .utterance import Utterance


class Renderer:
    """Renders utterances of one session in batches of `batch_size` and keeps the session's RenderRate.

    Args:
        live: the shared model, encoder and templates.
        template_of: the template of a timeline slot.
        clock: the session's clock (batches and encoder windows are timed on it).
        batch_size: speech frames per network call.
        rate: the measure to start from (a warm-up's, or an empty one).
    """

    def __init__(self, live: LiveModel, template_of: Callable[[int], int], clock: Clock, batch_size: int,
                 rate: RenderRate) -> None:
        self.live, self.template_of, self.clock, self.batch_size, self.rate = live, template_of, clock, batch_size, rate

    def step(self, utterance: Utterance, due: Callable[[int], float] | None = None) -> bool:
        """Take in the utterance's pushed speech, skip the frames a batch started now would finish
        after `due(slot)` (real time; None skips nothing), render the next batch whose audio is
        complete. False when there was nothing to do."""
        windows, started = utterance.features.windows, self.clock.now()
        ingested = utterance.ingest()
        if utterance.features.windows > windows:
            self.rate.add_encoding(self.clock.now() - started, utterance.features.windows - windows)
        if due is not None:
            self._skip_late(utterance, due)
        if utterance.next_render < utterance.frame_limit() and utterance.features.ready(utterance.next_render):
            self._render(utterance)
            return True
        return ingested

    def _skip_late(self, utterance: Utterance, due: Callable[[int], float]) -> None:
        assert utterance.start_slot is not None  # placed before its frames are due
        while utterance.next_render < utterance.frame_limit():
            slot = utterance.start_slot + utterance.next_render
            if self.clock.now() + self.rate.seconds_per_batch <= due(slot):
                break
            utterance.next_render += 1

    def _render(self, utterance: Utterance) -> None:
        assert utterance.start_slot is not None  # placed before it renders
        started = self.clock.now()
        indices: list[int] = []
        while (len(indices) < self.batch_size and utterance.next_render < utterance.frame_limit()
               and utterance.features.ready(utterance.next_render)):
            indices.append(utterance.next_render)
            utterance.next_render += 1
        templates = [self.template_of(utterance.start_slot + i) for i in indices]
        images = self.live.network_inputs(templates)
        outputs = self.live.infer(images, np.stack([utterance.features.window(i) for i in indices]), templates)
        finished = self.clock.now()
        for i, output in zip(indices, outputs):
            utterance.finished(i, to_pixels(output), finished)
        utterance.features.release(min(indices))
        self.rate.add(finished - started, len(indices))
        self.live.batch_done(len(indices), finished - started)
