"""A model's network streams: one thread per stream, so that the calls `streams` allows run at once,
either a batch whole on the next stream (offline: batches overlap) or a batch split over every
stream (live: one batch's latency). A stream is one thread for the model's life, so that what a
stream's first call costs (an OpenVINO infer request of its own, first allocations, kernels for the
shape) is paid once per stream.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from ..models.backends.base import InferenceModel
from .template_cache import TemplateCache, run_network

if TYPE_CHECKING:  # OpenCV stays unloaded until templates are opened
    from ..inputs.templates import TemplateSet


class NetworkStreams:
    """The streams of `model`, each a thread named `name`-i, through `cache` when there is one."""

    def __init__(self, model: InferenceModel, name: str, cache: TemplateCache | None = None) -> None:
        self.model, self.cache = model, cache
        self._threads = [ThreadPoolExecutor(1, thread_name_prefix=f"{name}-{i}") for i in range(model.streams)]
        self._turns = itertools.cycle(self._threads)
        self._lock = threading.Lock()

    def submit(self, images: np.ndarray, audio: np.ndarray, templates: TemplateSet, indices: Sequence[int]
               ) -> Future[np.ndarray]:
        """The network on a batch of templates `indices` of `templates`, whole, on the next stream in
        turn: of `streams` calls made one after another, each runs on a stream of its own."""
        with self._lock:
            thread = next(self._turns)
        return thread.submit(run_network, self.model, images, audio, self.cache, templates, indices)

    def split(self, images: np.ndarray, audio: np.ndarray, templates: TemplateSet, indices: Sequence[int] | None
              ) -> np.ndarray:
        """The network on a batch split over the streams (part i on stream i), which run at once;
        `indices` the batch's templates (None: not templates, so run whole, past the template cache)."""
        cache = self.cache if indices is not None else None
        keys = list(indices) if indices is not None else list(range(len(images)))
        parts = np.array_split(np.arange(len(images)), min(self.model.streams, len(images)))
        calls = [thread.submit(run_network, self.model, images[part], audio[part], cache, templates,
                               [keys[row] for row in part]) for thread, part in zip(self._threads, parts)]
        return np.concatenate([call.result() for call in calls])

    def close(self, wait: bool = True) -> None:
        """Let the threads go: `wait` for the running calls, cancelling those not started (else
        return at once, what is queued running on)."""
        for thread in self._threads:
            thread.shutdown(wait=wait, cancel_futures=wait)
