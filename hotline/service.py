"""The composition root: builds every part from the settings and wires them, no globals.

AMI client → event pipeline (parse + tracker) → spilling buffer → intake (journal) → bus →
websocket hub; recordings and the HTTP API hang off the same objects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from config import Settings
from journal.audit import AuditWriter
from journal.bus import Bus
from journal.db import Database
from journal.intake import Intake
from telephony.ami import AmiClient
from telephony.buffer import SpillingBuffer
from telephony.callevents import CallEvent
from telephony.pipeline import EventPipeline
from telephony.routing import Routing
from telephony.tracker import CallTracker

log = structlog.get_logger(__name__)

# extras key: coroutine functions a part adds to be awaited by Services.stop (closing clients).
STOP_HOOKS_KEY = "on_stop"


def routing_of(settings: Settings) -> Routing:
    return Routing(
        hotline_numbers=frozenset(settings.hotline_numbers),
        l2_targets=frozenset(settings.l2_targets),
        smo_lines=dict(settings.smo_lines),
        dial_prefixes=tuple(settings.dial_prefixes),
    )


@dataclass
class Services:
    """Everything the running service is made of."""

    settings: Settings
    db: Database
    bus: Bus
    buffer: SpillingBuffer
    tracker: CallTracker
    pipeline: EventPipeline
    intake: Intake
    audit_log: AuditWriter
    ami: AmiClient | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, db_schema: str | None = None) -> Services:
        db = Database(settings.database_url, schema=db_schema)
        bus = Bus()
        buffer = SpillingBuffer(settings.event_buffer_size,
                                settings.spill_dir / f"{settings.pbx_id}.jsonl")
        tracker = CallTracker(routing_of(settings))
        pipeline = EventPipeline(tracker, buffer)
        intake = Intake(db, bus, pbx_id=settings.pbx_id,
                        recordings_pbx_dir=settings.recordings_pbx_dir)
        services = cls(settings, db, bus, buffer, tracker, pipeline, intake,
                       AuditWriter(db.engine))
        intake.on_committed = services._after_commit
        return services

    async def start(self, *, connect_ami: bool = True) -> None:
        """Create the schema, restore open calls, start intake and the AMI client."""
        await self.db.create_schema()
        for linkedid, direction, answered_by in await self.intake.open_calls():
            self.tracker.restore(linkedid, direction, answered_by)
        self.tasks.append(asyncio.create_task(self._run_intake(), name="intake"))
        recordings = self.extras.get("recordings")
        if recordings is not None:
            self.tasks.append(asyncio.create_task(recordings.run(), name="recordings"))
        if connect_ami and self.settings.ami_host:
            self.connect_ami()

    def connect_ami(self) -> AmiClient:
        """Start the AMI client (also used by tests that connect only once pages listen)."""
        settings = self.settings
        self.ami = AmiClient(
            host=settings.ami_host or "127.0.0.1", port=settings.ami_port,
            username=settings.ami_username, secret=settings.ami_secret.get_secret_value(),
            event_sink=self.pipeline.feed, on_login=self.pipeline.begin_snapshot,
            ping_interval_s=settings.ami_ping_interval_s,
            ping_timeout_s=settings.ami_ping_timeout_s,
            idle_timeout_s=settings.ami_idle_timeout_s,
            backoff_max_s=settings.ami_backoff_max_s,
        )
        self.ami.start()
        return self.ami

    async def _run_intake(self) -> None:
        while True:
            try:
                await self.intake.run(self.buffer)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The batch stays lost only if the database refuses it five times; log loudly
                # and keep consuming so one poisoned batch cannot stop the line.
                log.exception("intake.failed")
                await asyncio.sleep(1)

    async def _after_commit(self, batch: Sequence[CallEvent]) -> None:
        recordings = self.extras.get("recordings")
        if recordings is not None:
            recordings.notify(batch)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every buffered call event is committed (tests, shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (len(self.buffer) or self.intake.busy) \
                and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.ami is not None:
            await self.ami.stop()
        await self.drain(5)
        await self.audit_log.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        for hook in self.extras.get(STOP_HOOKS_KEY, []):
            try:
                await hook()
            except Exception:
                log.exception("service.stop_hook_failed")
        await self.db.dispose()

    def health(self) -> dict[str, Any]:
        ami_state = self.ami.state if self.ami is not None else "not_configured"
        return {
            "ami": {
                "state": ami_state,
                "last_error": self.ami.last_error if self.ami else None,
                "logins": self.ami.logins if self.ami else 0,
            },
            "pipeline": {
                "messages": self.pipeline.stats.messages,
                "malformed": self.pipeline.stats.malformed,
                "errors": self.pipeline.stats.errors,
                "call_events": self.pipeline.stats.call_events,
                "buffered": len(self.buffer),
                "spilled_total": self.buffer.total_spilled,
            },
            "intake": {
                "batches": self.intake.committed_batches,
                "events": self.intake.committed_events,
                "retries": self.intake.retries,
            },
            "active_calls": len(self.tracker.active_calls),
        }
