"""Recorded AMI traces (``trace.jsonl``): reading them and giving them fresh ids.

A trace line is ``{"t": seconds, "msg": [[key, value], ...]}``, ``{"t", "banner"}`` or
``{"t", "marker"}`` (see shared/ami-traces/README.md).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_ID = re.compile(r"\b(1[0-9]{9})\.([0-9]+)\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


@dataclass(frozen=True, slots=True)
class TraceItem:
    """One line of a trace: an AMI message, a banner or a recorder marker."""

    t: float
    pairs: tuple[tuple[str, str], ...] = ()
    banner: str | None = None
    marker: str | None = None

    @property
    def is_message(self) -> bool:
        return bool(self.pairs)

    @property
    def is_response(self) -> bool:
        return bool(self.pairs) and self.pairs[0][0] == "Response"

    def header(self, key: str) -> str | None:
        for k, v in self.pairs:
            if k == key:
                return v
        return None


def read_trace(path: Path | str) -> list[TraceItem]:
    """All lines of a trace file; a line that is not valid JSON is skipped."""
    items: list[TraceItem] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            t = float(record.get("t", 0.0))
            if "msg" in record:
                pairs = tuple((str(k), "" if v is None else str(v)) for k, v in record["msg"])
                items.append(TraceItem(t, pairs=pairs))
            elif "banner" in record:
                items.append(TraceItem(t, banner=str(record["banner"])))
            elif "marker" in record:
                items.append(TraceItem(t, marker=str(record["marker"])))
    return items


def streamed_messages(items: Iterable[TraceItem]) -> list[TraceItem]:
    """The messages a replay peer streams: no banners, markers or responses, and not the
    FullyBooted that belongs to a login (the peer sends its own)."""
    out: list[TraceItem] = []
    in_login = False
    for item in items:
        if item.banner is not None:
            in_login = True
            continue
        if not item.is_message or item.is_response:
            continue
        if in_login and item.header("Event") == "FullyBooted":
            in_login = False
            continue
        in_login = False
        out.append(item)
    return out


def discover_traces(root: Path | str) -> list[Path]:
    """Scenario folders under ``root`` that hold a trace.jsonl and a meta.json."""
    root = Path(root)
    return sorted(p for p in root.iterdir()
                  if (p / "trace.jsonl").is_file() and (p / "meta.json").is_file())


def refresh_ids(items: Iterable[TraceItem], round_no: int) -> Iterator[TraceItem]:
    """The same trace with every Uniqueid/Linkedid and bridge id made new for ``round_no``.

    Ids look like ``<epoch>.<counter>``; the epoch is shifted by ``round_no`` * 100000 seconds so
    rounds never collide; bridge UUIDs are replaced by stable per-round UUIDs.
    """
    if round_no == 0:
        yield from items
        return
    shift = round_no * 100_000
    namespace = uuid.UUID(int=round_no)
    # A trace repeats the same few values (ids, channel names) many times: each is fixed once.
    fixed: dict[str, str] = {}

    def fix(value: str) -> str:
        new = fixed.get(value)
        if new is not None:
            return new
        new = value
        if "." in new:
            new = _ID.sub(lambda m: f"{int(m.group(1)) + shift}.{m.group(2)}", new)
        if "-" in new and len(new) >= 36:
            new = _UUID.sub(lambda m: str(uuid.uuid5(namespace, m.group(0))), new)
        fixed[value] = new
        return new

    for item in items:
        if item.pairs:
            yield TraceItem(item.t, pairs=tuple((k, fix(v)) for k, v in item.pairs))
        else:
            yield item
