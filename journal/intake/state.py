"""What one intake batch has read and decided, until it is written (journal/intake/rows.py
reads and writes it, journal/intake/rules.py changes it event by event)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from journal.notes import NEW_REQUEST_SCOPE, Note, RequestScope


def stage(pending: BatchRequest | BatchLeg | BatchCall, values: dict[str, Any]) -> None:
    """Record column values on a batch object: into its pending INSERT row if it is new in
    this batch, else into the UPDATE of its stored row."""
    target = pending.row if pending.row is not None else pending.changes
    target.update(values)


@dataclass(slots=True, eq=False)
class BatchRequest:
    """A request as the batch sees it: identity, plus the columns intake may change."""

    id: int | None
    number: int | None
    caller_normalized: str
    caller_number: str
    operator: str | None = None
    status: str = "new"
    closed: bool = False
    outcome: str | None = None
    # Who may see it (level, SMO, corruption flag); told to the websocket hub with each note.
    scope: RequestScope = NEW_REQUEST_SCOPE
    row: dict[str, Any] | None = None  # pending INSERT (a request new in this batch)
    changes: dict[str, Any] = field(default_factory=dict)  # pending UPDATE of a stored row
    version_inc: int = 0
    # A new request's caller's earlier requests, read when it is written (for early pops).
    history: list[dict[str, Any]] | None = None

    def bump_version(self) -> None:
        if self.row is not None:
            self.row["version"] += 1
        else:
            self.version_inc += 1


@dataclass(slots=True, eq=False)
class BatchLeg:
    uniqueid: str
    ended: bool
    row: dict[str, Any] | None = None  # pending INSERT
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class BatchCall:
    """A stored (or about to be stored) call and what the batch knows of its rows."""

    id: int | None
    linkedid: str
    request: BatchRequest | None
    queued: bool = False
    answered: bool = False
    ended: bool = False
    outbound: bool = False
    legs: dict[str, BatchLeg] = field(default_factory=dict)
    transfers: set[tuple[str, str, str]] | None = None  # loaded on demand
    row: dict[str, Any] | None = None  # pending INSERT
    changes: dict[str, Any] = field(default_factory=dict)

    @property
    def request_id(self) -> int | None:
        return self.request.id if self.request is not None else None

    @property
    def request_number(self) -> int | None:
        return self.request.number if self.request is not None else None


@dataclass(slots=True, eq=False)
class Pop:
    """A screen pop whose history is filled in when its run of events is written."""

    note: Note
    request: BatchRequest  # new in this batch: its history was read with it, no query here
    last_new_number: int  # requests new in this batch with a higher number came later
    statuses: dict[int, str]  # status of batch-known requests of this caller at ring time


@dataclass(slots=True)
class Batch:
    """Everything one batch has read and decided, until it is written."""

    calls: dict[str, BatchCall | None] = field(default_factory=dict)
    reqs: dict[int, BatchRequest] = field(default_factory=dict)  # stored requests, by id
    by_caller: dict[str, list[BatchRequest]] = field(default_factory=lambda: defaultdict(list))
    new_reqs: list[BatchRequest] = field(default_factory=list)  # not yet inserted
    new_calls: list[BatchCall] = field(default_factory=list)
    new_legs: list[tuple[BatchCall, BatchLeg]] = field(default_factory=list)
    dirty_calls: dict[int, BatchCall] = field(default_factory=dict)
    dirty_legs: list[tuple[BatchCall, BatchLeg]] = field(default_factory=list)
    dirty_reqs: dict[int, BatchRequest] = field(default_factory=dict)
    transfers: list[tuple[BatchCall, dict[str, Any]]] = field(default_factory=list)
    recordings: list[tuple[BatchCall, dict[str, Any]]] = field(default_factory=list)
    known_paths: set[str] = field(default_factory=set)
    logs: list[tuple[BatchCall, datetime, str, dict[str, Any]]] = field(default_factory=list)
    pops: list[Pop] = field(default_factory=list)
    # Call-back calls on missed calls that ended: (call, request, result, at).
    attempts: list[tuple[BatchCall, BatchRequest, str, datetime]] = field(default_factory=list)
    new_numbers: set[int] = field(default_factory=set)
    new_per_caller: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_new_number: int = 0
    next_number: int = 0
    locked: bool = False
    # pending_callbacks entries taken by this attempt: given back if it rolls back.
    taken_callbacks: dict[str, int] = field(default_factory=dict)
    # Ended calls that may still learn facts (CEL backfill of a call the live path closed
    # by reconciliation, blind to its end).
    amend: set[str] = field(default_factory=set)
    # Ringing legs popped as they rang (journal/intake/early.py stored their note).
    claimed: frozenset[str] = frozenset()

    # The pending changes: a new row's INSERT values, or a stored row's UPDATE.
    def add_leg(self, call: BatchCall, uniqueid: str, *, channel: str = "",
                extension: str | None = None, queue: str | None = None,
                rang_at: datetime | None = None, answered_at: datetime | None = None) -> None:
        leg = BatchLeg(uniqueid, False, row={
            "uniqueid": uniqueid, "channel": channel, "extension": extension, "queue": queue,
            "rang_at": rang_at, "answered_at": answered_at, "ended_at": None})
        call.legs[uniqueid] = leg
        self.new_legs.append((call, leg))

    def touch_call(self, call: BatchCall, **values: Any) -> None:
        stage(call, values)
        if call.row is None and call.id is not None:
            self.dirty_calls[call.id] = call

    def touch_leg(self, call: BatchCall, leg: BatchLeg, **values: Any) -> None:
        if leg.row is None and not leg.changes:
            self.dirty_legs.append((call, leg))
        stage(leg, values)

    def touch_req(self, req: BatchRequest, **values: Any) -> None:
        if req.closed:
            return  # a closed request is read-only (the database refuses it too); calls still log
        stage(req, values)
        if req.row is None and req.id is not None:
            self.dirty_reqs[req.id] = req

    def log(self, call: BatchCall, at: datetime, entry_type: str, **data: Any) -> None:
        """A line of the call's log (empty values left out)."""
        self.logs.append((call, at, entry_type,
                          {k: v for k, v in data.items() if v is not None and v != ""}))
