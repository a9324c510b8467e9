"""The composition root: builds every part from the settings and wires them, no globals.

AMI client → event pipeline (parse + tracker) → spilling buffer → intake (journal) → bus →
websocket hub; recordings and the HTTP API hang off the same objects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from config import Settings
from hotline.web.context import WebPart
from journal.audit import AuditWriter
from journal.backfill import CelBackfill, RecordingFinder
from journal.bus import Bus, LocalBus
from journal.celsource import CelSource
from journal.completeness import CompletenessReport, check_day
from journal.db import Database
from journal.intake import Intake
from journal.intake.early import EarlyPops
from journal.leadership import Leadership
from journal.outbox import Outbox
from journal.pending_callbacks import PendingCallbacks
from journal.pgbus import PostgresBus
from recordings.worker import RecordingsWorker
from telephony.ami import AmiClient
from telephony.buffer import SpillingBuffer
from telephony.callevents import CallEvent
from telephony.pipeline import EventPipeline
from telephony.routing import Routing
from telephony.tracker import CallTracker

log = structlog.get_logger(__name__)

StopHook = Callable[[], Awaitable[None]]


def routing_of(settings: Settings) -> Routing:
    return Routing(
        hotline_numbers=frozenset(settings.hotline_numbers),
        l2_targets=frozenset(settings.l2_targets),
        smo_lines=dict(settings.smo_lines),
        dial_prefixes=tuple(settings.dial_prefixes),
    )


def cel_source_of(settings: Settings) -> CelSource:
    """The PBX's CEL table as HOTLINE_CEL_URL / _CEL_TABLE / _PBX_TIMEZONE name it."""
    assert settings.cel_url is not None
    return CelSource(settings.cel_url, table=settings.cel_table, timezone=settings.pbx_timezone)


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
    # Call-backs the web layer asked the PBX to dial; the intake links them to their request.
    callbacks: PendingCallbacks
    # Where intake and journal actions store their notifications and publish them after commit.
    outbox: Outbox
    ami: AmiClient | None = None
    # Several instances (HOTLINE_BUS=postgresql): who ingests this PBX; None = this one alone.
    leadership: Leadership | None = None
    ami_wanted: bool = True  # start(connect_ami=False): tests connect it themselves
    backfill: CelBackfill | None = None
    cel_wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The completeness proof of the PBX's today and yesterday, after every backfill run.
    completeness_last: dict[str, CompletenessReport] = field(default_factory=dict)
    # Parts (hotline.assembly): the recordings worker and how backfill finds a call's file.
    recordings: RecordingsWorker | None = None
    recording_finder: RecordingFinder | None = None
    web_parts: list[WebPart] = field(default_factory=list)  # add their routes to the app
    stop_hooks: list[StopHook] = field(default_factory=list)  # close clients, last in stop()
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, *, db_schema: str | None = None) -> Services:
        db = Database(settings.database_url, schema=db_schema)
        bus: Bus = PostgresBus(settings.database_url, schema=db_schema) \
            if settings.bus == "postgresql" else LocalBus()
        buffer = SpillingBuffer(settings.event_buffer_size,
                                settings.spill_dir / f"{settings.pbx_id}.jsonl")
        tracker = CallTracker(routing_of(settings))
        pipeline = EventPipeline(tracker, buffer)
        callbacks = PendingCallbacks()
        outbox = Outbox(bus)
        intake = Intake(db, outbox, pbx_id=settings.pbx_id,
                        recordings_pbx_dir=settings.recordings_pbx_dir,
                        missed_callback_attempts=settings.missed_callback_attempts,
                        callbacks=callbacks)
        services = cls(settings, db, bus, buffer, tracker, pipeline, intake,
                       AuditWriter(db.engine), callbacks, outbox)
        intake.on_committed = services._after_commit
        intake.early = EarlyPops(db, outbox)
        pipeline.listeners.append(intake.early.seen)
        if settings.bus == "postgresql":
            services.leadership = Leadership(
                settings.database_url, f"hotline-ingest:{db_schema or 'public'}:"
                f"{settings.pbx_id}", on_gain=services._become_ingester,
                on_loss=services._stop_ingesting, retry_s=settings.leader_retry_s)
        return services

    async def start(self, *, connect_ami: bool = True) -> None:
        """Check the schema is current (``migrations.SchemaError`` if not: run `hotline db
        upgrade`), start the bus and intake; then restore open calls and start the AMI client
        — at once, or (several instances) once this instance is elected its PBX's ingester."""
        await self.db.require_current_schema()
        await self.db.open_writer()
        await self.bus.start()
        self.tasks.append(asyncio.create_task(self._run_intake(), name="intake"))
        recordings = self.recordings
        if recordings is not None:
            self.tasks.append(asyncio.create_task(recordings.run(), name="recordings"))
        if self.settings.cel_url:
            self.backfill = self.build_backfill()
            self.tasks.append(asyncio.create_task(self._run_backfill(), name="cel-backfill"))
        self.ami_wanted = connect_ami
        if self.leadership is not None:
            self.leadership.start()
            return
        await self._restore_open_calls()
        if connect_ami and self.settings.ami_host:
            self.connect_ami()

    async def _restore_open_calls(self) -> None:
        for linkedid, direction, answered_by, elsewhere in await self.intake.open_calls():
            self.tracker.restore(linkedid, direction, answered_by, elsewhere)

    @property
    def ingesting(self) -> bool:
        """Whether this instance ingests its PBX's calls (always, with one instance)."""
        return self.leadership is None or self.leadership.leader

    async def _become_ingester(self) -> None:
        """Elected: take the calls over from the journal, then from the PBX itself."""
        self.tracker = self.pipeline.tracker = CallTracker(routing_of(self.settings))
        await self._restore_open_calls()
        if self.ami_wanted and self.settings.ami_host:
            self.connect_ami()

    async def _stop_ingesting(self) -> None:
        """The lock is gone (its connection dropped): another instance may ingest now, so
        this one stops reading the PBX at once; what is buffered is still written (idempotent
        by (PBX, Linkedid))."""
        ami, self.ami = self.ami, None
        if ami is not None:
            await ami.stop()

    def build_backfill(self) -> CelBackfill:
        """CEL backfill from HOTLINE_CEL_URL (also used by `hotline cel backfill`)."""
        settings = self.settings
        source = cel_source_of(settings)
        finder = self.recording_finder
        self.stop_hooks.append(source.close)
        return CelBackfill(source, self.intake, routing_of(settings),
                           lookback=timedelta(hours=settings.cel_lookback_h),
                           find_recording=finder)

    async def _run_backfill(self) -> None:
        """At start, after every AMI (re)login and every HOTLINE_CEL_INTERVAL_S."""
        assert self.backfill is not None
        while True:
            self.cel_wake.clear()
            try:
                await self.backfill.run()
                await self._check_recent_days()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The CEL database may be down too: the next run reads from the same mark.
                log.exception("cel.backfill_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cel_wake.wait(), self.settings.cel_interval_s)

    async def completeness(self, day: date) -> CompletenessReport:
        """The completeness proof of one PBX-local day (CEL backfill must be configured)."""
        assert self.backfill is not None
        return await check_day(self.backfill.source, self.db, routing_of(self.settings),
                               pbx_id=self.settings.pbx_id, day=day,
                               timezone=self.settings.pbx_timezone)

    async def _check_recent_days(self) -> None:
        today = datetime.now(ZoneInfo(self.settings.pbx_timezone)).date()
        for label, day in (("today", today), ("yesterday", today - timedelta(days=1))):
            self.completeness_last[label] = await self.completeness(day)

    def _on_login(self) -> None:
        self.pipeline.begin_snapshot()
        self.cel_wake.set()

    def connect_ami(self) -> AmiClient:
        """Start the AMI client (also used by tests that connect only once pages listen)."""
        settings = self.settings
        self.ami = AmiClient(
            host=settings.ami_host or "127.0.0.1", port=settings.ami_port,
            username=settings.ami_username, secret=settings.ami_secret.get_secret_value(),
            event_sink=self.pipeline.feed, on_login=self._on_login,
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
        recordings = self.recordings
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
        if self.leadership is not None:
            await self.leadership.stop()
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
        if self.intake.early is not None:
            await self.intake.early.close()
        for hook in self.stop_hooks:
            try:
                await hook()
            except Exception:
                log.exception("service.stop_hook_failed")
        await self.bus.stop()
        await self.db.dispose()

    def health(self) -> dict[str, Any]:
        ami_state = self.ami.state if self.ami is not None else \
            "not_configured" if self.ingesting else "standby"  # another instance ingests
        return {
            "ami": {
                "state": ami_state,
                "last_error": self.ami.last_error if self.ami else None,
                "logins": self.ami.logins if self.ami else 0,
            },
            "pipeline": {
                "messages": self.pipeline.stats.messages,
                # Events with bad fields, and frames that were not AMI at all.
                "malformed": self.pipeline.stats.malformed
                + (self.ami.frames.malformed if self.ami else 0),
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
            "instance": self._instance_health(),
            "cel": self._cel_health(),
        }

    def _instance_health(self) -> dict[str, Any]:
        bus = self.bus
        facts: dict[str, Any] = {"bus": self.settings.bus, "ingesting": self.ingesting}
        if isinstance(bus, PostgresBus):
            facts.update(id=bus.instance, listening=bus.connected.is_set(),
                         listener_connects=bus.connects, remote_notes=bus.remote_notes)
        return facts

    def _cel_health(self) -> dict[str, Any]:
        backfill = self.backfill
        if backfill is None:
            return {"state": "not_configured"}
        return {"state": "error" if backfill.last_error else "ok",
                "runs": backfill.runs, "recovered": backfill.recovered,
                "last_run_at": backfill.last_run_at.isoformat() if backfill.last_run_at
                else None, "last_error": backfill.last_error}
