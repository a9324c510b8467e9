"""The synthetic AMI load the benchmarks share: recorded scenarios copied with fresh ids,
interleaved so that many calls are in progress at once, and a ReplayPeer in its own process
streaming them (the PBX is another process too).

Everything here is lazy: a copy's ids are refreshed as its messages are streamed, so a load of
a million channels costs the templates' memory, not the load's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TRACES = Path(os.environ.get("HOTLINE_TRACES", REPO.parent / "shared" / "ami-traces"))
SECRET = "bench-secret"
# The ids a channel is known by on channel events (its own and the other parties').
CHANNEL_ID_KEYS = frozenset({"Uniqueid", "DestUniqueid", "TransfererUniqueid",
                             "TransfereeUniqueid", "OrigTransfererUniqueid",
                             "SecondTransfererUniqueid", "TransferTargetUniqueid"})


@dataclass(frozen=True)
class Template:
    """One recorded scenario: its streamed messages and how many requests each copy makes."""

    name: str
    items: list[Any]
    requests: int

    @property
    def channels(self) -> int:
        """Distinct channels (Uniqueids) one copy of the scenario has."""
        return len({v for item in self.items for k, v in item.pairs if k in CHANNEL_ID_KEYS})


def templates(root: Path = TRACES) -> list[Template]:
    """Scenarios usable as independent concurrent calls (no reconnect or PBX restart inside)."""
    from telephony.trace import discover_traces, read_trace, streamed_messages

    found = []
    for scenario in discover_traces(root):
        items = read_trace(scenario / "trace.jsonl")
        if any(i.marker in ("recorder-reconnect", "connection-lost") for i in items):
            continue
        meta = json.loads((scenario / "meta.json").read_text(encoding="utf-8"))
        found.append(Template(scenario.name, streamed_messages(items),
                              meta["expected_journal_requests"]))
    return found


def interleave(calls: Iterable[Iterable[Any]], in_flight: int) -> Iterator[Any]:
    """Round-robin over up to ``in_flight`` calls at a time; the next call starts as one ends.

    ``calls`` is read lazily: the next call is taken only when a place is free.
    """
    pending = iter(calls)
    active: deque[Iterator[Any]] = deque()
    more = True
    while True:
        while more and len(active) < in_flight:
            call = next(pending, None)
            if call is None:
                more = False
            else:
                active.append(iter(call))
        if not active:
            return
        it = active.popleft()
        item = next(it, None)
        if item is not None:
            yield item
            active.append(it)


def synthetic_calls(n_calls: int, in_flight: int, first_round: int = 1,
                    only: tuple[str, ...] = ()) -> tuple[list[Any], int]:
    """``n_calls`` scenario copies with fresh ids, interleaved; and the requests they make."""
    from telephony.trace import refresh_ids

    pool = [t for t in templates() if not only or t.name[:3] in only]
    calls = []
    expected = 0
    for index in range(n_calls):
        template = pool[index % len(pool)]
        calls.append(list(refresh_ids(template.items, first_round + index)))
        expected += template.requests
    return list(interleave(calls, in_flight)), expected


# --------------------------------------------------------------------------- the PBX process
# Builds, in the peer process, the messages to stream and what to tell the parent first; the
# third argument is the pipe (the builder may send more once the stream is over).
LoadBuilder = Callable[[dict[str, Any], Any], tuple[Iterable[Any], dict[str, Any]]]


def _peer_process(build: LoadBuilder, args: dict[str, Any], conn: Any,
                  on_done: Callable[[Any], None] | None) -> None:
    """A ReplayPeer in its own process: builds the load, reports its port, streams once."""
    from telephony.replay import ReplayPeer

    items, info = build(args, conn)

    async def main() -> None:
        peer = ReplayPeer(items, speed=0, secret=SECRET, rate=args.get("rate", 0.0))
        port = await peer.start()
        conn.send({"port": port, **info})
        await peer.done.wait()
        if on_done is not None:
            on_done(conn)
        # Stay until the parent says the run is over (the client may still be reading).
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await peer.close()

    asyncio.run(main())


@contextlib.contextmanager
def pbx_process(build: LoadBuilder, args: dict[str, Any],
                on_done: Callable[[Any], None] | None = None,
                ) -> Iterator[tuple[dict[str, Any], Any]]:
    """Fork a replay peer streaming ``build(args)``; yield (what it reported, the pipe)."""
    parent, child = mp.Pipe()
    process = mp.get_context("fork").Process(target=_peer_process,
                                             args=(build, args, child, on_done), daemon=True)
    process.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("the replay peer did not start")
        yield parent.recv(), parent
    finally:
        with contextlib.suppress(Exception):
            parent.send("stop")
        process.join(5)
        if process.is_alive():
            process.kill()
