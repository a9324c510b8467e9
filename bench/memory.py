"""Benchmark: memory per channel — does RSS stay flat while channels come and go?

    .venv/bin/python -m bench.memory                         # tracker, 1,000,000 channels
    .venv/bin/python -m bench.memory --tracemalloc --types   # + what grew, by line and type
    .venv/bin/python -m bench.memory --mode service          # whole service, 200,000 channels

The load (``bench/load.py``): copies of the recorded scenarios with fresh ids per copy,
``--in-flight`` calls at once — the 8-800 ones (screen pop, queue, transfers, recordings) and,
weighted up, the internal, outbound and other-DID calls that make no request (s07, s10) — plus
hostile shapes: recorded calls with every Hangup moved before the channel's BridgeLeave, a
synthetic internal call whose channels get BridgeLeave, DialEnd, NewCallerid, Hold and VarSet
after their Hangup, a Hangup of a never-seen channel, and channels seen only in Newstate/VarSet
(then Hangup). Each run spans ``--day-channels`` of a simulated day (default: the run is one
day), so anything the service keeps "for a while" is measured at its real age.

``--mode tracker``: parse_event + CallTracker.handle in this process, nothing else (the messages
parse_event ignores are left out of the stream: they never reach the tracker). Every ``--every``
channels: the tracker's container sizes (every attribute with a length, found by looking, so a
rewritten tracker is measured as it is) and RSS (VmRSS).
``--mode service``: the full service (``build_services``, the web app and its websocket hub
running; the recordings worker only with ``--with-recordings``: with no file ever appearing it
marks every recording missing, and its long transactions hold SQLite's write lock so that the
intake falls behind) on SQLite, fed over TCP AMI by a ReplayPeer in another process; the
service's RSS and the sizes of its parts' containers. The peer leaves out the messages
parse_event ignores unless ``--full-stream`` (they only cost time: framing and parsing keep
nothing of them); it offers ``--rate`` messages/s, a load the service keeps up with (saturated,
RSS would measure the backlog in the hand-over buffer, and SQLite lock waits would stall the
intake).

The summary makes the verdict plain: RSS at 10 %, 50 % and 100 % of the channels, and the slopes
(least squares over the samples from 10 % and from 50 % on: the service's connection pool,
SQLite page caches and statement caches warm up over the first half) in MiB per 100,000
channels; flat means at most ``FLAT_MIB_PER_100K``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.load import SECRET, Template, interleave, pbx_process, templates

FLAT_MIB_PER_100K = 0.5
HOTLINE = "88007070561"
ROUTING = {"hotline_numbers": HOTLINE, "l2_targets": "7001,201,202",
           "smo_lines": "88001002030=SMO1,88005553535=SMO2"}
# Extra copies per round of the calls that make no request (internal, other DID, outbound).
EXTRA_WEIGHT = {"s10": 3, "s07": 1}
# Recorded calls also streamed with each Hangup before the channel's BridgeLeave.
HANGUP_FIRST = ("s01", "s04", "s05", "s10", "s24")


# --------------------------------------------------------------------------- the mix
def _pairs(**headers: str) -> tuple[tuple[str, str], ...]:
    return tuple(headers.items())


def _chan(name: str, uniqueid: str, linkedid: str, *, num: str, exten: str,
          context: str = "from-operators", state: str = "6", prefix: str = "") -> dict[str, str]:
    return {f"{prefix}Channel": name, f"{prefix}ChannelState": state,
            f"{prefix}CallerIDNum": num, f"{prefix}Context": context,
            f"{prefix}Exten": exten, f"{prefix}Uniqueid": uniqueid,
            f"{prefix}Linkedid": linkedid}


def hostile_templates() -> list[Template]:
    """Synthetic shapes (ids in the recorded form, so ``refresh_ids`` makes them new)."""
    from telephony.trace import TraceItem

    epoch = "1799000000"
    a = _chan("PJSIP/104-0000a000", f"{epoch}.1", f"{epoch}.1", num="104", exten="105")
    b = _chan("PJSIP/105-0000a001", f"{epoch}.2", f"{epoch}.1", num="104", exten="s")
    b_dest = _chan("PJSIP/105-0000a001", f"{epoch}.2", f"{epoch}.1", num="104", exten="s",
                   prefix="Dest")
    bridge = "0a1b2c3d-0000-4000-8000-000000000001"
    ghost = _chan("PJSIP/106-0000a002", f"{epoch}.3", f"{epoch}.3", num="106", exten="s")
    late = [
        {"Event": "Newchannel", **a},
        {"Event": "Newchannel", **b},
        {"Event": "DialBegin", **a, **b_dest, "DialString": "105"},
        {"Event": "Newstate", **b},
        {"Event": "DialEnd", **a, **b_dest, "DialStatus": "ANSWER"},
        {"Event": "BridgeEnter", "BridgeUniqueid": bridge, **a},
        {"Event": "BridgeEnter", "BridgeUniqueid": bridge, **b},
        {"Event": "Hangup", **a, "Cause": "16"},
        {"Event": "BridgeLeave", "BridgeUniqueid": bridge, **a},
        {"Event": "NewCallerid", **a},
        {"Event": "Hold", **a},
        {"Event": "Hangup", **b, "Cause": "16"},
        {"Event": "BridgeLeave", "BridgeUniqueid": bridge, **b},
        {"Event": "DialEnd", **a, **b_dest, "DialStatus": "ANSWER"},
        {"Event": "VarSet", **b, "Variable": "FROM_DID", "Value": "84951230000"},
        {"Event": "Hangup", **ghost, "Cause": "16"},
    ]
    c = _chan("PJSIP/107-0000a003", f"{epoch}.4", f"{epoch}.4", num="107", exten="s",
              state="5")
    seen_late = [
        {"Event": "Newstate", **c},
        {"Event": "VarSet", **c, "Variable": "FROM_DID", "Value": "84951230000"},
        {"Event": "Hangup", **c, "Cause": "16"},
    ]

    def template(name: str, messages: list[dict[str, str]]) -> Template:
        items = [TraceItem(0.001 * i, pairs=_pairs(**m)) for i, m in enumerate(messages)]
        return Template(name, items, 0)

    return [template("x-events-after-hangup", late), template("x-newstate-varset-only",
                                                              seen_late)]


def hangup_first(template: Template) -> Template:
    """The scenario with each channel's BridgeLeave held back until just after its Hangup."""
    hangs = {item.header("Uniqueid") for item in template.items
             if item.header("Event") == "Hangup"}
    held: dict[str | None, list[Any]] = {}
    out = []
    for item in template.items:
        event, uniqueid = item.header("Event"), item.header("Uniqueid")
        if event == "BridgeLeave" and uniqueid in hangs:
            held.setdefault(uniqueid, []).append(item)
            continue
        out.append(item)
        if event == "Hangup":
            out.extend(held.pop(uniqueid, []))
    return Template(f"{template.name}~hangup-first", out, template.requests)


def only_parsed(template: Template) -> Template:
    """Without the messages parse_event ignores (the decision does not depend on the ids)."""
    from telephony.events import MalformedEvent, parse_event
    from telephony.framing import headers_of

    def kept(item: Any) -> bool:
        try:
            return parse_event(headers_of(item.pairs)) is not None
        except MalformedEvent:
            return True
    return Template(template.name, [i for i in template.items if kept(i)], template.requests)


def mix(full_stream: bool = False) -> list[Template]:
    """One round of the load: every scenario once, the no-request calls weighted up, the
    hostile shapes."""
    recorded = templates()
    by_prefix = {t.name[:3]: t for t in recorded}
    round_ = list(recorded)
    for prefix, extra in EXTRA_WEIGHT.items():
        round_ += [by_prefix[prefix]] * extra
    round_ += [hangup_first(by_prefix[p]) for p in HANGUP_FIRST]
    round_ += hostile_templates()
    return round_ if full_stream else [only_parsed(t) for t in round_]


@dataclass
class Load:
    """The copies streamed so far; ``seen`` counts the channels of every copy started."""

    pool: list[Template]
    channels: int
    in_flight: int
    seen: int = 0
    copies: int = 0
    requests: int = 0
    on_copy: Callable[[Load], None] | None = None
    _sizes: dict[str, int] = field(default_factory=dict)

    def _copies(self) -> Iterator[Iterable[Any]]:
        from telephony.trace import refresh_ids

        for template in itertools.cycle(self.pool):
            if self.seen >= self.channels:
                return
            size = self._sizes.get(template.name)
            if size is None:
                size = self._sizes[template.name] = template.channels
            self.copies += 1
            self.seen += size
            self.requests += template.requests
            if self.on_copy is not None:
                self.on_copy(self)
            yield refresh_ids(template.items, self.copies)

    def stream(self) -> Iterator[Any]:
        return interleave(self._copies(), self.in_flight)


def describe(pool: list[Template]) -> str:
    channels = sum(t.channels for t in pool)
    messages = sum(len(t.items) for t in pool)
    hotline = sum(t.channels for t in pool if t.requests)
    return (f"{len(pool)} calls per round ({', '.join(t.name for t in pool)}); "
            f"{channels} channels, {messages} messages per round; "
            f"{100 * hotline / channels:.0f} % of channels on 8-800 calls")


# --------------------------------------------------------------------------- measuring
def rss_mib(pid: str = "self") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def container_sizes(obj: Any) -> dict[str, int]:
    """Every attribute of ``obj`` that has a length (dicts, sets, lists, deques, caches…)."""
    if obj is None:
        return {}
    names: dict[str, Any] = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot):
                names[slot] = getattr(obj, slot)
    sizes = {}
    for name, value in names.items():
        if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
            continue
        try:
            sizes[name] = len(value)
        except TypeError:
            continue
    return sizes


def _fmt_sizes(sizes: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in sizes.items())


@dataclass
class Sample:
    channels: int
    rss: float
    detail: str


def _slope(samples: list[Sample]) -> float | None:
    """Least-squares MiB per 100,000 channels."""
    if len(samples) < 2:
        return None
    n = len(samples)
    mx = sum(s.channels for s in samples) / n
    my = sum(s.rss for s in samples) / n
    var = sum((s.channels - mx) ** 2 for s in samples)
    if not var:
        return None
    return 100_000 * sum((s.channels - mx) * (s.rss - my) for s in samples) / var


def summary(samples: list[Sample], total: int) -> list[str]:
    """RSS at 10/50/100 % and the slopes from 10 % and from 50 % (the service's caches, pools
    and SQLite page caches warm up over the first half): the verdict in a few lines."""
    def at(share: float) -> Sample:
        target = share * total
        return min(samples, key=lambda s: abs(s.channels - target))

    lines = [f"RSS at {int(100 * share):3d} % ({at(share).channels:>9,} channels): "
             f"{at(share).rss:7.1f} MiB" for share in (0.1, 0.5, 1.0)]
    for share in (0.1, 0.5):
        slope = _slope([s for s in samples if s.channels >= share * total - 1])
        if slope is None:
            continue
        verdict = "FLAT" if slope <= FLAT_MIB_PER_100K else "GROWS"
        lines.append(f"slope from {int(100 * share)} %: {slope:+.2f} MiB per 100,000 channels "
                     f"({slope * 10:+.1f} MiB per 1M) -> {verdict} "
                     f"(flat: <= {FLAT_MIB_PER_100K} MiB per 100k)")
    return lines


def top_types(before: Counter[str], after: Counter[str], n: int = 12) -> list[str]:
    grown = (after - before).most_common(n)
    return [f"  {count:+10,d}  {name}" for name, count in grown]


def type_counts() -> Counter[str]:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def print_tracemalloc(first: tracemalloc.Snapshot | None, n: int = 20) -> None:
    last = tracemalloc.take_snapshot()
    noise = [tracemalloc.Filter(False, tracemalloc.__file__),
             tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    last = last.filter_traces(noise)
    if first is not None:
        print(f"tracemalloc: top {n} growth since 10 % (by line):")
        stats = last.compare_to(first.filter_traces(noise), "lineno")
        for stat in stats[:n]:
            print(f"  {stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+9d} blocks  "
                  f"{stat.traceback}")
    print(f"tracemalloc: top {n} allocations at the end (by line):")
    for stat in last.statistics("lineno")[:n]:
        print(f"  {stat.size / 1024:10.1f} KiB {stat.count:9d} blocks  {stat.traceback}")


# --------------------------------------------------------------------------- tracker mode
def run_tracker(args: argparse.Namespace) -> list[Sample]:
    from config import load_settings
    from hotline.service import routing_of
    from telephony.events import MalformedEvent, parse_event
    from telephony.framing import headers_of
    from telephony.tracker import CallTracker

    tracker = CallTracker(routing_of(load_settings(**ROUTING)))
    load = Load(mix(), args.channels, args.in_flight)
    print("load:", describe(load.pool))
    day = args.day_channels or args.channels
    start = datetime(2026, 11, 25, tzinfo=UTC)
    seconds_per_channel = 86_400 / day
    samples: list[Sample] = []
    next_print = args.every
    ten_percent = max(1, args.channels // 10)
    snapshot: tracemalloc.Snapshot | None = None
    types_before: Counter[str] | None = None
    messages = produced = malformed = 0
    began = time.perf_counter()
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc_frames)

    def sample(force: bool = False) -> None:
        nonlocal next_print, snapshot, types_before
        if load.seen < next_print and not force:
            return
        rss = rss_mib()
        detail = (f"messages={messages:,} call_events={produced:,} "
                  f"{_fmt_sizes(container_sizes(tracker))}")
        samples.append(Sample(load.seen, rss, detail))
        print(f"{load.seen:>9,} channels {time.perf_counter() - began:7.1f} s  "
              f"RSS {rss:7.1f} MiB  {detail}", flush=True)
        while next_print <= load.seen:
            next_print += args.every
        if load.seen >= ten_percent and snapshot is None and args.tracemalloc:
            snapshot = tracemalloc.take_snapshot()
        if load.seen >= ten_percent and types_before is None and args.types:
            types_before = type_counts()

    clock = start
    for item in load.stream():
        messages += 1
        clock = start + timedelta(seconds=load.seen * seconds_per_channel)
        try:
            event = parse_event(headers_of(item.pairs))
            if event is not None:
                produced += len(tracker.handle(event, clock))
        except MalformedEvent:
            malformed += 1
        if load.seen >= next_print:
            sample()
    sample(force=True)
    print(f"{load.copies:,} calls, {load.requests:,} of them 8-800 (requests), "
          f"{messages:,} messages, {malformed} malformed, tracker.unknown_channel_events="
          f"{getattr(tracker, 'unknown_channel_events', '?')}")
    if types_before is not None:
        print("object types grown since 10 % (gc-tracked objects):")
        print("\n".join(top_types(types_before, type_counts())))
    if args.tracemalloc:
        print_tracemalloc(snapshot)
    return samples


# --------------------------------------------------------------------------- service mode
def _service_load(args: dict[str, Any], conn: Any) -> tuple[Iterable[Any], dict[str, Any]]:
    """In the peer process: the lazy stream; every ``step`` channels started, the number of
    messages handed out before that copy goes to the parent (channels seen per message)."""
    step = args["step"]
    load = Load(mix(args["full_stream"]), args["channels"], args["in_flight"])
    handed = 0
    mark = step

    def on_copy(current: Load) -> None:
        nonlocal mark
        if current.seen >= mark:
            conn.send(("checkpoint", handed, current.seen))
            while mark <= current.seen:
                mark += step

    load.on_copy = on_copy

    def counted() -> Iterator[Any]:
        nonlocal handed
        for item in load.stream():
            handed += 1
            yield item
        conn.send(("end", handed, load.seen, load.requests))

    per_channel = sum(len(t.items) for t in load.pool) / sum(t.channels for t in load.pool)
    return counted(), {"pool": describe(load.pool), "messages_per_channel": per_channel}


def _without_recordings(settings: Any) -> Any:
    """``build_services`` without the recordings worker (the web parts kept)."""
    from hotline.assembly import WEB_PARTS
    from hotline.service import Services
    from hotline.web import recordings_api

    services = Services.build(settings)
    services.web_parts.extend(
        attach for attach in WEB_PARTS if attach is not recordings_api.attach)
    return services


def _drop_log_events(*names: str) -> None:
    """Leave these structlog events out (the rest of the configuration as it is)."""
    import structlog

    def drop(_logger: object, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("event") in names:
            raise structlog.DropEvent
        return event

    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[drop, *processors])


async def run_service_async(args: argparse.Namespace, info: dict[str, Any],
                            conn: Any) -> list[Sample]:
    from aiohttp import web

    from config import load_settings
    from hotline.assembly import build_services
    from hotline.logs import setup_logging
    from hotline.runtime import settle_heap
    from hotline.web.app import create_app

    setup_logging(args.log_level)
    _drop_log_events("recordings.missing")  # every call's: no file ever appears here
    tmp = Path(tempfile.mkdtemp(prefix="hotline-membench-"))
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp}/bench.sqlite3", ami_host="127.0.0.1",
        ami_port=info["port"], ami_secret=SECRET, ami_ping_interval_s=5,
        ami_ping_timeout_s=30, ami_idle_timeout_s=120, spill_dir=tmp / "spill",
        recordings_dir=tmp / "recordings",
        # No recording file ever appears here: give up on them soon, as a steady state.
        recordings_missing_after_s=args.recordings_missing_after_s,
        http_host="127.0.0.1", http_port=0, **ROUTING)
    services = build_services(settings) if args.with_recordings else _without_recordings(settings)
    await services.start(connect_ami=False)
    runner = web.AppRunner(create_app(services), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app = runner.app
    hub = next((app[key] for key in app if type(app[key]).__name__ == "Hub"), None)
    if hub is not None and args.rate > 0:
        # The run plays ``--day-channels`` of a day in minutes: what the service forgets after
        # a while of real time is given the same share of the run as of the day.
        day = args.day_channels or args.channels
        scale = day * info["messages_per_channel"] / args.rate / 86_400
        hub.scopes.idle_s *= scale
        print(f"one simulated day = {day * info['messages_per_channel'] / args.rate:.0f} s: "
              f"hub.scopes.idle_s scaled to {hub.scopes.idle_s:.1f} s")
    settle_heap()
    services.connect_ami()
    stats = services.pipeline.stats
    checkpoints: list[tuple[int, int]] = [(0, 0)]
    end: tuple[int, int, int] | None = None
    samples: list[Sample] = []
    next_print = args.every
    began = time.perf_counter()
    ten_percent = max(1, args.channels // 10)
    snapshot: tracemalloc.Snapshot | None = None
    types_before: Counter[str] | None = None
    deadline = began + args.max_seconds
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc_frames)

    def parts() -> dict[str, Any]:
        ami = services.ami
        manager = getattr(ami, "_manager", None)
        found = {"tracker": services.tracker, "pipeline": services.pipeline,
                 "pipeline.stats": stats, "buffer": services.buffer,
                 "intake": services.intake, "bus": services.bus, "ami": ami,
                 "ami.manager": manager, "ami.protocol": getattr(manager, "protocol", None),
                 "recordings": services.recordings,
                 "audit": services.audit_log}
        for key in app:
            value = app[key]
            if not isinstance(value, str | int | float | bool) and hasattr(value, "__dict__") \
                    and type(value).__module__.startswith(("hotline", "journal")):
                found[f"app[{getattr(key, 'name', key)}]"] = value
        hub = next((v for v in found.values() if type(v).__name__ == "Hub"), None)
        if hub is not None:
            found["hub.scopes"] = hub.scopes
            found["hub.frames"] = hub.frames
        return found

    def detail() -> str:
        bits = [f"messages={stats.messages:,} call_events={stats.call_events:,} "
                f"committed={services.intake.committed_events:,}"]
        for name, obj in parts().items():
            sizes = {k: v for k, v in container_sizes(obj).items() if v}
            if sizes:
                bits.append(f"{name}[{_fmt_sizes(sizes)}]")
        return " ".join(bits)

    def channels_done() -> int:
        done = stats.messages
        best = 0
        for index, channels in checkpoints:
            if index <= done:
                best = channels
        return best

    def read_pipe() -> None:
        nonlocal end
        while conn.poll():
            message = conn.recv()
            if message[0] == "checkpoint":
                checkpoints.append((message[1], message[2]))
            elif message[0] == "end":
                end = (message[1], message[2], message[3])
                checkpoints.append((message[1], message[2]))

    def sample(channels: int) -> None:
        nonlocal snapshot, types_before
        rss = rss_mib()
        text = detail()
        samples.append(Sample(channels, rss, text))
        print(f"{channels:>9,} channels {time.perf_counter() - began:7.1f} s  RSS {rss:7.1f} "
              f"MiB  {text}", flush=True)
        if channels >= ten_percent and snapshot is None and args.tracemalloc:
            snapshot = tracemalloc.take_snapshot()
        if channels >= ten_percent and types_before is None and args.types:
            types_before = type_counts()

    try:
        while time.perf_counter() < deadline:
            read_pipe()
            channels = channels_done()
            if channels >= next_print and (end is None or channels < end[1]):
                sample(channels)
                while next_print <= channels:
                    next_print += args.every
            if end is not None and stats.messages >= end[0] and not len(services.buffer) \
                    and not services.intake.busy \
                    and services.intake.committed_events >= stats.call_events:
                break
            await asyncio.sleep(0.05)
        timed_out = time.perf_counter() >= deadline
        # What the recordings worker still waits for ends within its deadline: the state the
        # service settles at once the traffic has passed.
        await asyncio.sleep(min(args.recordings_missing_after_s + 2, 30))
        sample(end[1] if end is not None else channels_done())
        print(f"{'TIMED OUT; ' if timed_out else ''}"
              f"{end[2] if end else '?'} requests expected; "
              f"{services.intake.committed_batches} batches, spilled "
              f"{services.buffer.total_spilled}, malformed {stats.malformed}, errors "
              f"{stats.errors}")
        if types_before is not None:
            print("object types grown since 10 % (gc-tracked objects):")
            print("\n".join(top_types(types_before, type_counts())))
        if args.tracemalloc:
            print_tracemalloc(snapshot)
    finally:
        await runner.cleanup()
        await services.stop()
    return samples


def run_service(args: argparse.Namespace) -> list[Sample]:
    peer_args = {"channels": args.channels, "in_flight": args.in_flight,
                 "full_stream": args.full_stream, "step": max(1, args.every // 20),
                 "rate": args.rate}
    with pbx_process(_service_load, peer_args) as (info, conn):
        print("load:", info["pool"])
        return asyncio.run(run_service_async(args, info, conn))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["tracker", "service"], default="tracker")
    parser.add_argument("--channels", type=int, default=None,
                        help="distinct channels to feed (tracker: 1,000,000; service: 200,000)")
    parser.add_argument("--every", type=int, default=None,
                        help="print a sample every N channels (default: channels / 10)")
    parser.add_argument("--in-flight", type=int, default=200, help="calls in progress at once")
    parser.add_argument("--day-channels", type=int, default=0,
                        help="channels per simulated day (tracker's clock; default: --channels)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="trace allocations: growth since 10 %% and the top at the end")
    parser.add_argument("--tracemalloc-frames", type=int, default=1)
    parser.add_argument("--types", action="store_true",
                        help="object counts by type: what grew since 10 %%")
    parser.add_argument("--full-stream", action="store_true",
                        help="service: stream the messages parse_event ignores too")
    parser.add_argument("--rate", type=float, default=2000.0,
                        help="service: offered messages/s (0: as fast as the service reads; "
                        "a saturated service measures its backlog, not its steady state)")
    parser.add_argument("--with-recordings", action="store_true",
                        help="service: run the recordings worker too (no file ever appears, "
                        "so it marks every recording missing after the next option's delay)")
    parser.add_argument("--recordings-missing-after-s", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--log-level", default="warning", help="service: the service's log level")
    args = parser.parse_args(argv)
    if args.channels is None:
        args.channels = 1_000_000 if args.mode == "tracker" else 200_000
    if args.every is None:
        args.every = max(1, args.channels // 10)
    if args.mode == "tracker":
        samples = run_tracker(args)
    else:
        import logging

        logging.getLogger("telephony.replay").setLevel(logging.WARNING)
        samples = run_service(args)
    print("\n".join(summary(samples, args.channels)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
