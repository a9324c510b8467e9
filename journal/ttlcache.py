"""A small in-memory map whose entries expire: what the service remembers between requests."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Each value lives ``ttl_s`` seconds from when it was put (or less, per put); at most
    ``max_entries`` are kept, the oldest put going first."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if time.monotonic() >= item[0]:
            del self._items[key]
            return None
        return item[1]

    def put(self, key: K, value: V, ttl_s: float | None = None) -> None:
        life_s = self.ttl_s if ttl_s is None else min(ttl_s, self.ttl_s)
        self._items[key] = (time.monotonic() + life_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def remove_if(self, doomed: Callable[[K, V], bool]) -> None:
        for key in [k for k, (_, v) in self._items.items() if doomed(k, v)]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
