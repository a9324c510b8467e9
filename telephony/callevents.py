"""What the call tracker tells the journal: domain events about calls, free of AMI details."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call the journal cares about: inbound to the 8-800 line, or outbound to a citizen."""

    linkedid: str
    uniqueid: str
    direction: str  # "inbound" | "outbound"
    caller_number: str
    line: str  # the DID for inbound calls, the dialled number for outbound calls
    channel: str
    at: datetime
    # "ami": seen live; "cel": rebuilt from CEL rows by backfill (the service was blind).
    source: str = "ami"


@dataclass(frozen=True, slots=True)
class QueueJoined:
    linkedid: str
    queue: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LegRinging:
    """A phone rings for this call: the moment of the screen pop."""

    linkedid: str
    uniqueid: str
    extension: str
    channel: str
    queue: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LegRingNoAnswer:
    linkedid: str
    uniqueid: str
    extension: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallAnswered:
    linkedid: str
    uniqueid: str
    extension: str
    queue: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallAnsweredElsewhere:
    """Answered by an outside number (follow-me or forwarding through a trunk): no operator."""

    linkedid: str
    uniqueid: str
    number: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallHeld:
    linkedid: str
    extension: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallUnheld:
    linkedid: str
    extension: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CallTransferred:
    linkedid: str
    kind: str  # "blind" | "attended"
    from_extension: str
    to: str
    target: str  # a telephony.routing.Target value ("l2", "smo", "other")
    smo: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    linkedid: str
    uniqueid: str
    pbx_path: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LegEnded:
    linkedid: str
    uniqueid: str
    extension: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class CallEnded:
    linkedid: str
    outcome: str  # "answered" | "abandoned"
    reason: str  # "hangup" | "reconciled" | "pbx_restart"
    at: datetime


CallEvent = (
    CallStarted | QueueJoined | LegRinging | LegRingNoAnswer | CallAnswered
    | CallAnsweredElsewhere | CallHeld | CallUnheld | CallTransferred | RecordingStarted
    | LegEnded | CallEnded
)

EVENT_TYPES: dict[str, type[CallEvent]] = {
    cls.__name__: cls
    for cls in (
        CallStarted, QueueJoined, LegRinging, LegRingNoAnswer, CallAnswered,
        CallAnsweredElsewhere, CallHeld, CallUnheld, CallTransferred, RecordingStarted,
        LegEnded, CallEnded,
    )
}


def to_record(event: CallEvent) -> dict[str, Any]:
    """A JSON-ready dict (for the disk spill)."""
    record = asdict(event)
    record["at"] = event.at.isoformat()
    record["type"] = type(event).__name__
    return record


def from_record(record: dict[str, Any]) -> CallEvent:
    data = dict(record)
    cls = EVENT_TYPES[data.pop("type")]
    data["at"] = datetime.fromisoformat(data["at"])
    return cls(**data)
