"""Rest frames: what the network gives for silence on each template (the avatar at rest), computed
once per template and kept: in memory (an LRU bounded in bytes) and, where the model can be keyed,
on disk beside the export cache (models/rest_cache.py).

A rest frame is the network's 320x320 output, as pixels, for template k's input and the audio
model's window of a frame in the middle of a long silence (models/silence.py); pasted into template
k with a session's blend, it is the offline render of silence on that template.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from ..models.rest_cache import RestStore
from .arithmetic import to_pixels
from .lru import ByteLRU

logger = logging.getLogger(__name__)

#: Default memory for rest frames (0.3 MB each: about 800 templates), the rest read back from disk.
DEFAULT_REST_BYTES = 256 << 20
#: The network on a batch: (network inputs, audio windows, template indices) -> outputs (B, 3, 320, 320).
Infer = Callable[[np.ndarray, np.ndarray, list[int]], np.ndarray]


def rest_pixels(infer: Infer, inputs: np.ndarray, templates: list[int], window: np.ndarray) -> list[np.ndarray]:
    """The rest frames of `templates` (network inputs `inputs`): the network's output for each with
    the silence `window`, as 320x320 uint8 pixels."""
    audio = np.ascontiguousarray(np.broadcast_to(window, (len(templates), *window.shape)))
    return [to_pixels(output) for output in infer(inputs, audio, templates)]


class RestFrames:
    """The rest frame of each template of one model, template set and audio model: `get` what is kept
    (memory, then disk), `compute` what is missing. A template asked for by two threads at once is
    computed once (the second waits). Counters: `computed` (by the network), `loaded` (from disk).

    Args:
        infer: the network on a batch (see Infer).
        inputs: the network inputs of a list of templates.
        window: the silence window (computed on first use).
        store: the disk store, or None (memory only).
        max_bytes: memory for rest frames.
    """

    def __init__(self, infer: Infer, inputs: Callable[[list[int]], np.ndarray], window: Callable[[], np.ndarray],
                 store: RestStore | None, max_bytes: int = DEFAULT_REST_BYTES) -> None:
        self._infer, self._inputs, self._window_of, self.store = infer, inputs, window, store
        self._memory: ByteLRU[np.ndarray] = ByteLRU(max_bytes, lambda pixels: pixels.nbytes)
        self._window: np.ndarray | None = None
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.computed = self.loaded = 0

    def window(self) -> np.ndarray:
        """The silence window (computed once)."""
        with self._lock:
            if self._window is None:
                self._window = self._window_of()
            return self._window

    def get(self, template: int) -> np.ndarray | None:
        """Template `template`'s rest frame where it is kept (memory, or disk), else None."""
        pixels = self._memory.find(template)
        if pixels is None and self.store is not None and (pixels := self.store.load(template)) is not None:
            self._memory.put(template, pixels)
            with self._lock:
                self.loaded += 1
        return pixels

    def kept(self, template: int) -> bool:
        """True when template `template`'s rest frame is kept (without reading it)."""
        return self._memory.find(template) is not None or (self.store is not None and self.store.has(template))

    def compute(self, templates: Sequence[int]) -> None:
        """Compute the rest frames of `templates` that are not kept, in one batch (waiting for those
        another thread is computing). Call it in a turn at the model."""
        mine, others = self._claim(templates)
        if mine:
            try:
                pixels = rest_pixels(self._infer, self._inputs(mine), mine, self.window())
                for template, frame in zip(mine, pixels):
                    self._memory.put(template, frame)
                    if self.store is not None:
                        self.store.save(template, frame)
                with self._lock:
                    self.computed += len(mine)
            finally:
                with self._lock:
                    for template in mine:
                        self._pending.pop(template).set()
        for event in others:
            event.wait()

    def _claim(self, templates: Sequence[int]) -> tuple[list[int], list[threading.Event]]:
        """The templates left to this thread to compute, and the events of those others are computing."""
        wanted = [template for template in dict.fromkeys(templates) if not self.kept(template)]
        mine: list[int] = []
        others: list[threading.Event] = []
        with self._lock:
            for template in wanted:
                if template in self._pending:
                    others.append(self._pending[template])
                else:
                    self._pending[template] = threading.Event()
                    mine.append(template)
        return mine, others
