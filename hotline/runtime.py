"""Process-level tuning for a service whose event loop must not stall.

Python's cyclic garbage collector stops the event loop while it walks objects. With the default
thresholds (700, 10, 10) the service — a thousand websocket connections, the ORM, aiohttp — ran
a collection every few milliseconds and a full one every few seconds, and bench/screenpop saw a
full collection hold the loop for ~240 ms: a screen pop late by that much. ``settle_heap`` runs
once after start-up: it collects what start-up left behind and freezes the rest (``gc.freeze``:
libraries, the application and the schema move to a permanent generation that collections
skip), then raises the thresholds so that collections are rarer; each young collection then
walks at most ``GC_THRESHOLDS[0]`` objects (about 10 ms). Memory use is unchanged in practice:
the service creates few reference cycles (reference counting frees the rest at once).

``shorten_gil_switch``: the database writers are threads (journal/writer.py) that wake for a
reply, need the GIL for a moment and block again. While the loop fans notes out it holds the
GIL but for each socket write, and takes it straight back; a waiting thread asks for it only
after the switch interval, Python's default 5 ms, and a transaction needs it several times.
At 0.5 ms a writer thread waits at most that long each time (bench/screenpop, see
docs/DESIGN-NOTES.md).
"""

from __future__ import annotations

import gc
import sys

GC_THRESHOLDS = (10_000, 50, 1_000)
SWITCH_INTERVAL_S = 0.0005


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def shorten_gil_switch() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
