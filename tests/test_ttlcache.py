"""The expiring map behind the session cache and the playback index."""

from __future__ import annotations

import time

import pytest

from journal.ttlcache import TtlCache


def test_expiry_per_put_bound_and_removal(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache: TtlCache[str, int] = TtlCache(ttl_s=10, max_entries=3)
    cache.put("a", 1)
    cache.put("b", 2, ttl_s=2)     # shorter than the cache's own life
    cache.put("c", 3, ttl_s=60)    # never longer than it
    now[0] += 5
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] += 5
    assert cache.get("c") is None
    for key, value in (("x", 1), ("y", 2), ("z", 3), ("w", 4)):
        cache.put(key, value)
    assert len(cache) == 3 and cache.get("x") is None  # the oldest put went first
    cache.remove_if(lambda key, value: value % 2 == 0)
    assert (cache.get("y"), cache.get("z"), cache.get("w")) == (None, 3, None)
    cache.pop("z")
    cache.pop("missing")
    assert len(cache) == 0
