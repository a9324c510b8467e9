"""The hand-over buffer's spill file outlives a killed service (issue 14): the next service
on the same spill path must neither lose its own events nor break on the old file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from telephony.buffer import SpillingBuffer
from telephony.callevents import CallEnded, CallEvent

AT = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)


def ended(n: int) -> CallEvent:
    return CallEnded(f"1795580315.{n}", "answered", "hangup", AT)


async def drain(buffer: SpillingBuffer, limit: int) -> list[CallEvent]:
    out: list[CallEvent] = []
    while len(buffer):
        out += await buffer.get_batch(limit)
    return out


async def test_a_killed_services_spill_file_does_not_swallow_the_next_ones_events(
        tmp_path: Path) -> None:
    path = tmp_path / "spill" / "pbx1.jsonl"
    dead = SpillingBuffer(1, path)
    for n in range(4):  # one in memory, three spilled; then SIGKILL: memory gone, file stays
        dead.put(ended(n))
    assert path.is_file()

    buffer = SpillingBuffer(1, path)
    assert len(buffer) == 0  # the old file is not this service's to replay
    new = [ended(n) for n in range(10, 14)]
    for event in new:
        buffer.put(event)
    # Small batches: the old lines used to be read first, and the file was deleted when as
    # many lines as this service had spilled were read, with its own still in it.
    assert await drain(buffer, 2) == new
    kept = list(path.parent.glob("pbx1.jsonl.*.killed"))
    assert len(kept) == 1 and len(kept[0].read_text().splitlines()) == 3


async def test_a_killed_services_spill_file_and_one_large_batch(tmp_path: Path) -> None:
    """One batch used to read the old lines too, and the count went negative (ValueError)."""
    path = tmp_path / "spill" / "pbx1.jsonl"
    dead = SpillingBuffer(1, path)
    for n in range(4):
        dead.put(ended(n))
    buffer = SpillingBuffer(1, path)
    new = [ended(n) for n in range(10, 14)]
    for event in new:
        buffer.put(event)
    assert await drain(buffer, 100) == new
    assert len(buffer) == 0
