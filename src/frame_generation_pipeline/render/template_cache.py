"""The template cache: the network's template half (which reads only a template's input) computed
once per template and kept, in a thread-safe LRU bounded in bytes, for every render that shares it.

One cache may serve every session of a server and every job of a farm worker: entries are keyed by
the model (backend, checkpoint, mode, precision, device), the template set (its folders and size),
parsing and the template index. What is kept per template is the skips x2..x6 (6.3 MB in fp32);
x1 (13.1 MB, from `inc` alone, about 1% of the network's arithmetic) is computed again with the rest.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigurationError

if TYPE_CHECKING:  # OpenCV stays unloaded for the CLI's arguments, which read the default budget here
    from ..inputs.templates import TemplateSet

logger = logging.getLogger(__name__)

#: The default budget: about 80 templates in fp32, a few seconds of video, on a laptop's memory.
DEFAULT_TEMPLATE_CACHE_MB = 512
Skips = tuple[np.ndarray, ...]


def model_key(model: Any) -> Hashable:
    """What makes two models' template halves interchangeable (the model object itself if it says nothing)."""
    fields = ("name", "checkpoint_sha256", "precision", "device")
    if not all(hasattr(model, field) for field in fields):
        return id(model)
    return (*(getattr(model, field) for field in fields), model.mode.name)


def templates_key(templates: TemplateSet) -> Hashable:
    """What identifies a template set's network inputs (its folders, their size) and its parsing."""
    return (str(templates.image_dir.resolve()), str(templates.landmark_dir.resolve()), len(templates),
            None if templates.parsing_dir is None else str(templates.parsing_dir.resolve()))


class TemplateCache:
    """Template-half outputs per template, an LRU that never holds more than `max_bytes`.

    Counters: `computed` (templates whose half was computed), `hits`, `evicted`. A template asked
    for by two threads at once is computed once (the second waits for the first).
    """

    def __init__(self, max_bytes: int = DEFAULT_TEMPLATE_CACHE_MB << 20) -> None:
        if max_bytes < 0:
            raise ConfigurationError(f"the template cache's budget must be 0 or more bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Skips] = OrderedDict()
        self._pending: dict[Hashable, Future[Skips]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.computed = self.hits = self.evicted = 0

    @property
    def nbytes(self) -> int:
        """Memory held by the cached entries (never above `max_bytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def run(self, model: Any, images: np.ndarray, audio: np.ndarray, keys: Sequence[Hashable]) -> np.ndarray:
        """The network on a batch (`keys[i]` says which template `images[i]` is), its template half
        taken from the cache or computed once and kept; the model run whole where it cannot split."""
        if self.max_bytes == 0 or not getattr(model, "splits", False):
            return model.run(images, audio)
        skips = self.skips(model, images, keys)
        return model.rest(images, [np.stack(level) for level in zip(*skips, strict=True)], audio)

    def skips(self, model: Any, images: np.ndarray, keys: Sequence[Hashable]) -> list[Skips]:
        """The template half of each of `images` (one batch, unbatched results), cached by `keys`."""
        full_keys = [(model_key(model), key) for key in keys]
        found: dict[Hashable, Skips | Future[Skips]] = {}
        mine: dict[Hashable, Future[Skips]] = {}
        with self._lock:
            for key in full_keys:
                if key in found:
                    continue
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[key], self.hits = self._entries[key], self.hits + 1
                elif key in self._pending:
                    found[key] = self._pending[key]
                else:
                    found[key] = mine[key] = self._pending[key] = Future()
        if mine:
            self._compute(model, images, full_keys, mine)
        return [_result(found[key]) for key in full_keys]

    def _compute(self, model: Any, images: np.ndarray, keys: Sequence[Hashable], mine: dict[Hashable, Future[Skips]]) -> None:
        rows = [keys.index(key) for key in mine]
        try:
            levels = model.template_half(images[rows])
        except BaseException as exc:
            with self._lock:
                for key, future in mine.items():
                    del self._pending[key]
                    future.set_exception(exc)
            raise
        with self._lock:
            for i, (key, future) in enumerate(mine.items()):
                entry = tuple(level[i].copy() for level in levels)  # a copy: a view would keep the batch
                self.computed += 1
                del self._pending[key]
                self._keep(key, entry)
                future.set_result(entry)

    def _keep(self, key: Hashable, entry: Skips) -> None:
        """Insert `entry`, first evicting the least recently used until it fits (under the lock)."""
        size = sum(level.nbytes for level in entry)
        if size > self.max_bytes:
            return
        while self._bytes + size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= sum(level.nbytes for level in dropped)
            self.evicted += 1
        self._entries[key] = entry
        self._bytes += size


def _result(item: Skips | Future[Skips]) -> Skips:
    return item.result() if isinstance(item, Future) else item


def run_network(model: Any, images: np.ndarray, audio: np.ndarray, cache: TemplateCache | None,
                templates: TemplateSet, indices: Sequence[int]) -> np.ndarray:
    """The network on a batch of templates `indices` of `templates`: through `cache` when there is one."""
    if cache is None:
        return model.run(images, audio)
    identity = templates_key(templates)
    return cache.run(model, images, audio, [(identity, index) for index in indices])
