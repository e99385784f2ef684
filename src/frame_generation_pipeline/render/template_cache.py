"""The template cache: the network's template half (which reads only a template's input) kept per
template from its first frame on, in a thread-safe LRU bounded in bytes, for every render that shares it.

One cache may serve every session of a server and every job of a farm worker: entries are keyed by
the model (backend, checkpoint, mode, precision, device), the template set (its folders, size and
files: see TemplateSet.identity), parsing and the template index. What is kept per template is the skips x2..x6 (6.3 MB in fp32);
x1 (13.1 MB, from `inc` alone, about 1% of the network's arithmetic) is computed again with the rest.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from ..models.backends.base import InferenceModel
from .lru import ByteLRU

if TYPE_CHECKING:  # OpenCV stays unloaded for the CLI's arguments, which read the default budget here
    from ..inputs.templates import TemplateSet

logger = logging.getLogger(__name__)

#: The default budget: about 80 templates in fp32, a few seconds of video, on a laptop's memory.
DEFAULT_TEMPLATE_CACHE_MB = 512
Skips = tuple[np.ndarray, ...]


def model_key(model: InferenceModel) -> Hashable:
    """What makes two models' template halves interchangeable: the model's identity (backend,
    checkpoint digest, precision, device, mode); a model without one (its checkpoint unknown) is known
    by a weak reference to it, which no later model can share (an id() could, once the model is collected)."""
    identity = model.identity
    return weakref.ref(model) if identity is None else identity


def templates_key(templates: TemplateSet) -> Hashable:
    """What identifies a template set's network inputs (its folders, their size, its files' identity:
    a folder written again in place is another set) and its parsing."""
    return (str(templates.image_dir.resolve()), str(templates.landmark_dir.resolve()), len(templates),
            None if templates.parsing_dir is None else str(templates.parsing_dir.resolve()), templates.identity)


class TemplateCache(ByteLRU[Skips]):
    """Template-half outputs per template, an LRU that never holds more than `max_bytes`.

    A batch whose templates are all kept runs the rest of the network alone; one with a template not
    kept yet runs the whole network, which also gives the skips to keep (so a first visit costs what
    an uncached frame does). Counters: `computed` (templates whose half was kept), `hits`, `evicted`.
    A template asked for by two threads at once is computed once (the second waits for the first).
    """

    def __init__(self, max_bytes: int = DEFAULT_TEMPLATE_CACHE_MB << 20) -> None:
        super().__init__(max_bytes, lambda entry: sum(level.nbytes for level in entry))
        self._pending: dict[Hashable, Future[Skips]] = {}
        self._claims = threading.Lock()
        self.computed = 0

    def splits(self, model: InferenceModel) -> bool:
        """True when this cache runs `model` in halves (it keeps something and the model can split)."""
        return self.max_bytes > 0 and model.splits

    def run(self, model: InferenceModel, images: np.ndarray, audio: np.ndarray, keys: Sequence[Hashable]) -> np.ndarray:
        """The network on a batch (`keys[i]` says which template `images[i]` is): the rest alone from
        the kept skips, or whole (keeping the skips) where a template is new; whole where it cannot split."""
        if not self.splits(model):
            return model.run(images, audio)
        full_keys = [(model_key(model), key) for key in keys]
        found, mine = self._claim(full_keys)
        if mine:
            return self._first_visit(model, images, audio, full_keys, mine)
        skips = [_result(found[key]) for key in full_keys]
        return model.rest(images, [np.stack(level) for level in zip(*skips, strict=True)], audio)

    def _claim(self, keys: Sequence[Hashable]) -> tuple[dict[Hashable, Skips | Future[Skips]], dict[Hashable, Future[Skips]]]:
        """Each key's kept skips or the future of another thread computing them; the keys left to this one."""
        found: dict[Hashable, Skips | Future[Skips]] = {}
        mine: dict[Hashable, Future[Skips]] = {}
        with self._claims:
            for key in keys:
                if key in found:
                    continue
                kept = self.find(key)
                if kept is not None:
                    found[key] = kept
                elif key in self._pending:
                    found[key] = self._pending[key]
                else:
                    found[key] = mine[key] = self._pending[key] = Future()
        return found, mine

    def _first_visit(self, model: InferenceModel, images: np.ndarray, audio: np.ndarray, keys: Sequence[Hashable],
                     mine: dict[Hashable, Future[Skips]]) -> np.ndarray:
        """The whole network on the batch; the skips of the templates in `mine` kept."""
        try:
            output, levels = model.first_visit(images, audio)
        except BaseException as exc:
            with self._claims:
                for key, future in mine.items():
                    del self._pending[key]
                    future.set_exception(exc)
            raise
        with self._claims:
            for key, future in mine.items():
                row = keys.index(key)
                entry = tuple(level[row].copy() for level in levels)  # a copy: a view would keep the batch
                self.computed += 1
                del self._pending[key]
                self.put(key, entry)
                future.set_result(entry)
        return output


def _result(item: Skips | Future[Skips]) -> Skips:
    return item.result() if isinstance(item, Future) else item


def run_network(model: InferenceModel, images: np.ndarray, audio: np.ndarray, cache: TemplateCache | None,
                templates: TemplateSet, indices: Sequence[int]) -> np.ndarray:
    """The network on a batch of templates `indices` of `templates`: through `cache` when there is one."""
    if cache is None:
        return model.run(images, audio)
    identity = templates_key(templates)
    return cache.run(model, images, audio, [(identity, index) for index in indices])
