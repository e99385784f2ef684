"""A thread-safe least-recently-used map bounded in bytes: what the render caches keep entries in."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ..errors import ConfigurationError

Value = TypeVar("Value")


class ByteLRU(Generic[Value]):
    """Entries by key, never more than `max_bytes` of them (`size(value)` says an entry's bytes).

    A `find` makes its entry the most recently used; a `put` evicts the least recently used until the
    new entry fits, and keeps nothing larger than the whole budget. Counters: `hits`, `misses`, `evicted`.
    """

    def __init__(self, max_bytes: int, size: Callable[[Value], int]) -> None:
        if max_bytes < 0:
            raise ConfigurationError(f"a cache's budget must be 0 or more bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[Value, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evicted = 0

    @property
    def nbytes(self) -> int:
        """Memory held by the entries (never above `max_bytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, key: Hashable) -> Value | None:
        """The entry of `key` (now the most recently used), or None, counted as a hit or a miss."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[0]

    def put(self, key: Hashable, value: Value) -> bool:
        """Keep `value` under `key` (replacing what was there); False when it is larger than the budget."""
        size = self._size(value)
        if size > self.max_bytes:
            return False
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous[1]
            while self._bytes + size > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
                self.evicted += 1
            self._entries[key] = (value, size)
            self._bytes += size
        return True
