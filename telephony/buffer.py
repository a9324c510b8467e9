"""The bounded hand-over between the AMI reader and the journal's one ordered consumer.

The reader must never wait (Asterisk drops a manager session whose socket stalls), and no event
may be lost: past ``capacity`` items new ones are appended to a spill file on disk, and the
consumer drains memory first, then the spill, so order is kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from pathlib import Path

import structlog

from telephony.callevents import CallEvent, from_record, to_record

log = structlog.get_logger(__name__)


class SpillingBuffer:
    """FIFO of call events: memory up to ``capacity``, then a JSON-lines file."""

    def __init__(self, capacity: int, spill_path: Path | None = None) -> None:
        self.capacity = capacity
        self.spill_path = spill_path
        self._memory: deque[CallEvent] = deque()
        self._spilled = 0
        self._spill_read_offset = 0
        self._ready = asyncio.Event()
        self.total_spilled = 0
        self._set_aside_leftover()

    def _set_aside_leftover(self) -> None:
        """A spill file at start was left by a killed service (a clean stop drains it). Its
        events are not ours to replay: their head may be committed already, and the restart's
        CoreShowChannels reconciles the calls still up. Kept aside, not read: appending to it
        and reading it from the top would hand out those events and lose ours."""
        path = self.spill_path
        if path is None or not path.exists():
            return
        aside = path.with_name(f"{path.name}.{time.time_ns()}.killed")
        path.rename(aside)
        log.warning("buffer.spill_left_by_a_killed_service", kept_as=str(aside))

    def __len__(self) -> int:
        return len(self._memory) + self._spilled

    def put(self, event: CallEvent) -> None:
        """Never blocks."""
        if self._spilled or (len(self._memory) >= self.capacity and self.spill_path):
            self._spill(event)
        else:
            self._memory.append(event)
        self._ready.set()

    def _spill(self, event: CallEvent) -> None:
        assert self.spill_path is not None
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spill_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(to_record(event), ensure_ascii=False) + "\n")
        self._spilled += 1
        self.total_spilled += 1

    async def get_batch(self, limit: int) -> list[CallEvent]:
        """Wait for at least one event; return up to ``limit`` in order."""
        while not len(self):
            self._ready.clear()
            await self._ready.wait()
        batch: list[CallEvent] = []
        memory = self._memory
        while memory and len(batch) < limit:
            batch.append(memory.popleft())
        if not memory and self._spilled and len(batch) < limit:
            batch.extend(self._read_spill(limit - len(batch)))
        return batch

    def _read_spill(self, limit: int) -> list[CallEvent]:
        assert self.spill_path is not None
        events: list[CallEvent] = []
        with open(self.spill_path, encoding="utf-8") as handle:
            handle.seek(self._spill_read_offset)
            while len(events) < limit:
                line = handle.readline()
                if not line:
                    break
                events.append(from_record(json.loads(line)))
            self._spill_read_offset = handle.tell()
        self._spilled -= len(events)
        if not self._spilled:
            self.spill_path.unlink(missing_ok=True)
            self._spill_read_offset = 0
        return events
