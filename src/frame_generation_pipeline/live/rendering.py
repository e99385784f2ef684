"""The rendering half of a live session: speech into features, frames rendered ahead of their
slots, and (in real time) frames dropped that could not be on time. StreamingSession mixes it in."""

from __future__ import annotations

import logging

import numpy as np

from ..audio.mel import MEL_WINDOW, N_MELS
from ..contract import INPUT_SHAPE
from ..inputs.templates import ping_pong_index
from ..render.arithmetic import paste_generated_region, to_pixels
from ..render.template_cache import run_network
from .utterance import Utterance

logger = logging.getLogger(__name__)


class Rendering:
    """Rendering steps of StreamingSession (they use its model, cache, timeline, clock and lock)."""

    def _template(self, slot: int) -> int:
        return ping_pong_index(slot, len(self.templates), self.start_frame)

    def template_image(self, template: int) -> np.ndarray:
        """The decoded image of template `template` (what an idle slot shows)."""
        return self._cache.get(template).template.image

    def _compose(self, template: int, pixels: np.ndarray) -> np.ndarray:
        prepared = self._cache.get(template)
        return paste_generated_region(prepared.template.image, pixels, prepared.template.box,
                                      resized_crop=prepared.resized_crop, parsing=prepared.template.parsing)

    def _to_render(self) -> Utterance | None:
        """The first utterance with frames left to render, placed on the timeline (real time only:
        a simulation renders the utterance at the head of the timeline)."""
        with self._changed:
            utterances = [segment for segment in self._segments if isinstance(segment, Utterance)]
        previous_end = None
        for utterance in utterances:
            if utterance.start_slot is None:
                if utterance is not utterances[0] and previous_end is None:
                    return None  # the one before is still open: its end, and this start, are unknown
                self._place(utterance, previous_end)
            if utterance.features.count is None or utterance.next_render < utterance.features.count:
                return utterance
            previous_end = utterance.end_slot()
        return None

    def work(self, utterance: Utterance | None = None) -> bool:
        """One step of rendering: take in pushed speech, drop frames that cannot be on time (in real
        time), render the next batch whose audio is complete. False when there was nothing to do."""
        utterance = utterance or self._to_render()
        if utterance is None:
            return False
        self._place(utterance)
        windows, started = utterance.features.windows, self.clock.now()
        ingested = utterance.ingest()
        if utterance.features.windows > windows:
            self.rate.add_encoding(self.clock.now() - started, utterance.features.windows - windows)
        if self.realtime:
            self._drop_late(utterance)
        if utterance.next_render < utterance.frame_limit() and utterance.features.ready(utterance.next_render):
            self._render(utterance)
            return True
        return ingested

    def _render_loop(self) -> None:
        """The renderer of a threaded real-time session: work whenever there is work, else wait."""
        try:
            while not self._closed or self._segments:
                if not self.work():
                    with self._changed:
                        self._changed.wait(0.02)
        except Exception:  # the viewer keeps its slots (dropped from here on); the error is logged once
            logger.exception("live rendering stopped")
        finally:
            self._network.shutdown(wait=False)

    def _drop_late(self, utterance: Utterance) -> None:
        """Skip, without rendering, every frame that a batch started now would finish after its slot."""
        while utterance.next_render < utterance.frame_limit():
            slot = utterance.start_slot + utterance.next_render
            if self.clock.now() + self.rate.seconds_per_batch <= self._due(slot):
                break
            utterance.next_render += 1

    def _render(self, utterance: Utterance) -> None:
        """Render the next batch of frames whose audio is complete, and time it."""
        started = self.clock.now()
        indices = []
        while (len(indices) < self.batch_size and utterance.next_render < utterance.frame_limit()
               and utterance.features.ready(utterance.next_render)):
            indices.append(utterance.next_render)
            utterance.next_render += 1
        templates = [self._template(utterance.start_slot + i) for i in indices]
        images = np.stack([self._cache.get(template).network_input for template in templates])
        outputs = self._infer(images, np.stack([utterance.features.window(i) for i in indices]), templates)
        finished = self.clock.now()
        for i, output in zip(indices, outputs):
            utterance.finished(i, to_pixels(output), finished)
        utterance.features.release(min(indices))
        self.rate.add(finished - started, len(indices))

    def _infer(self, images: np.ndarray, audio: np.ndarray, templates: list[int] | None = None) -> np.ndarray:
        """The network on a batch of `templates` (through the template cache; None: not templates,
        run whole), split over the model's streams, which run at once from their own threads (as
        in the offline generator)."""
        cache = self.template_cache if templates is not None else None
        keys = np.asarray(templates if templates is not None else range(len(images)))
        parts = np.array_split(np.arange(len(images)), min(self.model.streams, len(images)))
        if len(parts) == 1:
            return run_network(self.model, images, audio, cache, self.templates, keys.tolist())
        calls = [self._network.submit(run_network, self.model, images[part], audio[part], cache, self.templates,
                                      keys[part].tolist()) for part in parts]
        return np.concatenate([call.result() for call in calls])

    def _warm_up(self) -> None:
        """Time a batch of the network and a window of the audio encoder, so that the first
        utterance's start delay rests on a measure (the second of two calls: a first call also pays
        for its set-up)."""
        images = np.zeros((self.batch_size, *INPUT_SHAPE), np.float32)
        audio = np.zeros((self.batch_size, *self.model.mode.audio_shape), np.float32)
        window = np.zeros((1, 1, N_MELS, MEL_WINDOW), np.float32)
        for timed in (False, True):
            started = self.clock.now()
            self._infer(images, audio)
            network = self.clock.now()
            self.encoder.encode_windows(window)
            if timed:
                self.rate.add(network - started, self.batch_size)
                self.rate.add_encoding(self.clock.now() - network, 1)

