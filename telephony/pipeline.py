"""From raw AMI messages to call events in the hand-over buffer: parse, track, queue.

Runs inside the socket read callback, so it does only CPU work and never raises: a malformed or
unknown message is counted, logged and skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from telephony.buffer import SpillingBuffer
from telephony.callevents import CallEvent
from telephony.events import Headers, MalformedEvent, parse_event
from telephony.tracker import CallTracker

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class PipelineStats:
    messages: int = 0
    ignored: int = 0
    malformed: int = 0
    call_events: int = 0
    errors: int = 0
    last_errors: list[str] = field(default_factory=list)


class EventPipeline:
    """Feeds the tracker; puts what it says into the buffer (and to optional listeners)."""

    def __init__(self, tracker: CallTracker, buffer: SpillingBuffer,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.tracker = tracker
        self.buffer = buffer
        self.stats = PipelineStats()
        self._clock = clock or (lambda: datetime.now(UTC))
        # Told every call event as it is produced, before the intake can take it (the early
        # screen pops, journal/intake/early.py; benchmarks' probes).
        self.listeners: list[Callable[[CallEvent], None]] = []

    def feed(self, headers: Headers) -> None:
        """One AMI message (an event; responses are not fed here)."""
        stats = self.stats
        stats.messages += 1
        try:
            event = parse_event(headers)
            if event is None:
                stats.ignored += 1
                return
            produced = self.tracker.handle(event, self._clock())
        except MalformedEvent as exc:
            stats.malformed += 1
            self._remember(str(exc))
            log.warning("ami.event_malformed", reason=str(exc))
            return
        except Exception as exc:  # a tracker bug must not kill the AMI session
            stats.errors += 1
            self._remember(repr(exc))
            log.exception("ami.event_failed", event=str(headers.get("Event")))
            return
        self.emit(produced)

    def begin_snapshot(self) -> None:
        self.tracker.begin_snapshot()

    def emit(self, produced: list[CallEvent]) -> None:
        if not produced:
            return
        for call_event in produced:
            self.buffer.put(call_event)
        self.stats.call_events += len(produced)
        for listener in self.listeners:
            for call_event in produced:
                try:
                    listener(call_event)
                except Exception:  # a listener's bug must not cost the AMI session
                    self.stats.errors += 1
                    log.exception("pipeline.listener_failed")

    def _remember(self, text: str) -> None:
        errors = self.stats.last_errors
        errors.append(text[:200])
        if len(errors) > 20:
            del errors[0]
