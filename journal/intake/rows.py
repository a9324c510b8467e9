"""The batch engine's rows: what a batch reads before its events are applied (calls by
Linkedid with their legs and requests, locked; transfers; recording paths) and how it writes
what they decided — one statement per table and kind (multi-row INSERTs, ``executemany``
UPDATEs by key, one history query for every screen pop)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Executable,
    Update,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from journal.callback_attempts import result_to_fill, settlement
from journal.db import REQUEST_COUNTER
from journal.history import HISTORY_CHUNK, HISTORY_LIMIT, grouped, histories_select, pick
from journal.intake.state import Batch, BatchCall, BatchLeg, BatchRequest, Pop
from journal.models import (
    Call,
    CallbackAttempt,
    CallLeg,
    CallLogEntry,
    Counter,
    Recording,
    Request,
    Transfer,
)
from journal.notes import RequestScope
from journal.pending_callbacks import PendingCallbacks
from journal.phones import normalize_phone
from telephony.callevents import CallEvent, CallStarted, CallTransferred, RecordingStarted

# Keys per IN (...) list and per UNION ALL: below SQLite's variable and compound-select limits.
CHUNK = 400
_REQUESTS = Request.__table__
# What a batch reads of a stored request, in ``Rows.known_request``'s argument order.
REQUEST_FACTS = (Request.number, Request.caller_normalized, Request.caller_number,
                 Request.operator, Request.status, Request.closed_at.is_not(None),
                 Request.outcome, Request.level, Request.smo, Request.corruption)
_CALLS = Call.__table__
_LEGS = CallLeg.__table__

# The batch's statements are built once (building a SELECT costs SQLAlchemy more than running
# it does); their values are parameters, the key lists expanding ones.
_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
_OF_PBX = Call.pbx_id == bindparam("pbx")
# PostgreSQL: the requests of the calls read, locked until the commit.
_LOCK = (select(Request.id).join(Call, Call.request_id == Request.id)
         .where(_OF_PBX, Call.linkedid.in_(_KEYS))
         .order_by(Request.id).with_for_update(of=Request))


@lru_cache(maxsize=2)
def _calls_select(amend: bool) -> Executable:
    """One row per leg of a call still in progress (one, leg-less, for an ended call): the
    legs come with their call rather than in a query of their own. ``amend``: also the legs of
    ended calls named by the ``amend`` parameter (CEL backfill)."""
    with_legs: ColumnElement[bool] = Call.ended_at.is_(None)
    if amend:
        with_legs = or_(with_legs, Call.linkedid.in_(bindparam("amend", expanding=True)))
    return (select(Call.id, Call.linkedid, Call.request_id, Call.queued_at.is_not(None),
                   Call.answered_at.is_not(None), Call.ended_at.is_not(None),
                   Call.direction, CallLeg.uniqueid, CallLeg.ended_at.is_not(None),
                   *REQUEST_FACTS)
            .outerjoin(Request, Request.id == Call.request_id)
            .outerjoin(CallLeg, and_(CallLeg.call_id == Call.id, with_legs))
            .where(_OF_PBX, Call.linkedid.in_(_KEYS)))


_TRANSFERS = select(Transfer.call_id, Transfer.kind, Transfer.from_extension, Transfer.to) \
    .where(Transfer.call_id.in_(_KEYS))
_PATHS = select(Recording.pbx_path).where(Recording.pbx_id == bindparam("pbx"),
                                          Recording.pbx_path.in_(_KEYS))
_INSERT_REQUESTS = insert(Request).returning(Request.id, sort_by_parameter_order=True)
_INSERT_CALLS = insert(Call).returning(Call.id, sort_by_parameter_order=True)
_INSERT_LEGS = insert(CallLeg)
_INSERT_TRANSFERS = insert(Transfer)
_INSERT_RECORDINGS = insert(Recording)
_INSERT_LOGS = insert(CallLogEntry)
# The key ``_update_many`` updates each table's rows by.
_UPDATE_KEYS: dict[str, tuple[Any, ColumnElement[bool]]] = {
    CallLeg.__tablename__: (_LEGS, (_LEGS.c.call_id == bindparam("_call_id"))
                            & (_LEGS.c.uniqueid == bindparam("_uniqueid"))),
    Call.__tablename__: (_CALLS, _CALLS.c.id == bindparam("_id")),
    Request.__tablename__: (_REQUESTS, _REQUESTS.c.id == bindparam("_id")),
}


@dataclass(slots=True)
class Rows:
    """Reading and writing for one PBX's batches."""

    pbx_id: str
    is_sqlite: bool
    callbacks: PendingCallbacks
    # Failed call-back attempts on a missed call before the request's result says so.
    missed_callback_attempts: int = 3

    def lock(self, conn: Connection, st: Batch) -> None:
        """SQLite: take the write lock before reading, so what is read stays true until the
        commit (pysqlite begins the transaction only at the first write). PostgreSQL locks the
        request rows it reads instead (``FOR UPDATE``)."""
        if st.locked:
            return
        st.locked = True
        if self.is_sqlite:
            conn.execute(update(Counter).where(Counter.name == REQUEST_COUNTER)
                         .values(value=Counter.value))

    def load(self, conn: Connection, st: Batch, events: Iterable[CallEvent]) -> None:
        """Read, once, the stored state of every call the events name that the batch does not
        know yet: the call, its request (locked), its legs; transfers and recording paths."""
        missing = list(dict.fromkeys(e.linkedid for e in events if e.linkedid not in st.calls))
        transfer_calls: set[str] = {e.linkedid for e in events if type(e) is CallTransferred}
        paths = [e.pbx_path for e in events if type(e) is RecordingStarted
                 and e.pbx_path not in st.known_paths]
        calls_select = _calls_select(bool(st.amend))
        amend = {"amend": sorted(st.amend)} if st.amend else {}
        if missing:
            for chunk in chunks(missing):
                keys = {"pbx": self.pbx_id, "keys": list(chunk)}
                if not self.is_sqlite:
                    conn.execute(_LOCK, keys)
                rows = conn.execute(calls_select, {**keys, **amend})
                for (call_id, linkedid, request_id, queued, answered, ended, direction,
                     leg_uniqueid, leg_ended, *request_columns) in rows:
                    call = st.calls.get(linkedid)
                    if call is None:
                        req = None
                        if request_id is not None:
                            req = st.reqs.get(request_id)
                            if req is None:
                                req = self.known_request(st, request_id, *request_columns)
                        call = BatchCall(call_id, linkedid, req, bool(queued), bool(answered),
                                         bool(ended), direction == "outbound")
                        st.calls[linkedid] = call
                    if leg_uniqueid is not None:
                        call.legs[leg_uniqueid] = BatchLeg(leg_uniqueid, bool(leg_ended))
            for linkedid in missing:
                st.calls.setdefault(linkedid, None)
        wanted = {c.id: c for lid in transfer_calls
                  if (c := st.calls.get(lid)) is not None and c.transfers is None}
        for call in wanted.values():
            call.transfers = set()
        stored = [call_id for call_id in wanted if call_id is not None]
        for chunk in chunks(stored):
            rows = conn.execute(_TRANSFERS, {"keys": list(chunk)})
            for row in rows:
                wanted[row.call_id].transfers.add(  # type: ignore[union-attr]
                    (str(row.kind), str(row.from_extension), str(row.to)))
        for chunk in chunks(list(dict.fromkeys(paths))):
            st.known_paths.update(conn.scalars(_PATHS, {"pbx": self.pbx_id,
                                                        "keys": list(chunk)}))

    @staticmethod
    def known_request(st: Batch, request_id: int, number: int | None, caller_n: str | None,
                      caller: str | None, operator: str | None, status: str, closed: Any,
                      outcome: str | None, level: str | None, smo: str | None,
                      corruption: Any) -> BatchRequest:
        req = BatchRequest(request_id, number, caller_n or "", caller or "", operator, status,
                           bool(closed), outcome, RequestScope(level, smo, bool(corruption)))
        st.reqs[request_id] = req
        st.by_caller[req.caller_normalized].append(req)
        return req

    def callback_request(self, conn: Connection, st: Batch,
                         event: CallStarted) -> BatchRequest | None:
        """The open request a call-back belongs to: originated through the service, or dialling
        the number of an open request awaiting a deferred answer."""
        number = normalize_phone(event.line)
        columns = (Request.id, *REQUEST_FACTS)
        request_id = self.callbacks.take(number)
        if request_id is not None:
            st.taken_callbacks[number] = request_id
            query = select(*columns).where(Request.id == request_id)
        else:
            query = (select(*columns)
                     .where(Request.status == "deferred", Request.closed_at.is_(None),
                            (Request.caller_normalized == number)
                            | (Request.contact_phone == number))
                     .order_by(Request.number.desc()).limit(1))
        if not self.is_sqlite:
            query = query.with_for_update(of=Request)
        row = conn.execute(query).first()
        if row is None:
            return None
        known = st.reqs.get(row[0])
        return known if known is not None else self.known_request(st, *row)

    def write(self, conn: Connection, st: Batch) -> None:
        """Write what the run decided: inserts first (ids for what hangs off them), the
        screen-pop histories, then updates, transfers and recordings."""
        if st.new_reqs:
            new_rows = [req.row for req in st.new_reqs if req.row is not None]
            ids = list(conn.scalars(_INSERT_REQUESTS, new_rows))
            for req, request_id in zip(st.new_reqs, ids, strict=True):
                req.id = request_id
                req.row = None
                st.reqs[request_id] = req
            self.new_histories(conn, st.new_reqs)
            st.new_reqs.clear()
        if st.pops:
            self.histories(conn, st)
        if st.new_calls:
            rows: list[dict[str, Any]] = []
            for call in st.new_calls:
                row = dict(call.row)  # type: ignore[arg-type]
                row["request_id"] = row.pop("request").id
                rows.append(row)
            ids = list(conn.scalars(_INSERT_CALLS, rows))
            for call, call_id in zip(st.new_calls, ids, strict=True):
                call.id = call_id
                call.row = None
            st.new_calls.clear()
        if st.attempts:
            self.write_attempts(conn, st)
        if st.new_legs:
            rows = []
            for call, leg in st.new_legs:
                rows.append({"call_id": call.id, **leg.row})  # type: ignore[dict-item]
                leg.row = None
            conn.execute(_INSERT_LEGS, rows)
            st.new_legs.clear()
        if st.dirty_legs:
            _update_many(conn, _LEGS, (
                ({"_call_id": call.id, "_uniqueid": leg.uniqueid}, leg.changes)
                for call, leg in st.dirty_legs))
            for _call, leg in st.dirty_legs:
                leg.changes = {}
            st.dirty_legs.clear()
        if st.dirty_calls:
            _update_many(conn, _CALLS, (
                ({"_id": call.id}, call.changes) for call in st.dirty_calls.values()))
            for call in st.dirty_calls.values():
                call.changes = {}
            st.dirty_calls.clear()
        if st.dirty_reqs:
            _update_many(conn, _REQUESTS, (
                ({"_id": req.id}, {**req.changes, **({"_version_inc": req.version_inc}
                                                     if req.version_inc else {})})
                for req in st.dirty_reqs.values()))
            for req in st.dirty_reqs.values():
                req.changes = {}
                req.version_inc = 0
            st.dirty_reqs.clear()
        if st.transfers:
            conn.execute(_INSERT_TRANSFERS, [
                {"call_id": call.id, **row} for call, row in st.transfers])
            st.transfers.clear()
        if st.recordings:
            conn.execute(_INSERT_RECORDINGS, [
                {"request_id": call.request_id, "call_id": call.id, **row}
                for call, row in st.recordings])
            st.recordings.clear()

    @staticmethod
    def write_logs(conn: Connection, st: Batch) -> None:
        """The calls' log lines of the whole batch (after its last run is written: every call
        has its id by then)."""
        if st.logs:
            conn.execute(_INSERT_LOGS, [
                {"call_id": call.id, "at": at, "type": kind, "data": data}
                for call, at, kind, data in st.logs])

    def write_attempts(self, conn: Connection, st: Batch) -> None:
        """Store the call-back attempts of the run and fill their requests' result
        ("Перезвонили", "Не дозвонились после N попыток") — before the requests' UPDATEs."""
        conn.execute(insert(CallbackAttempt), [
            {"request_id": req.id, "call_id": call.id, "at": at, "result": result,
             "source": "call", "user_login": None, "note": None}
            for call, req, result, at in st.attempts])
        reqs: dict[int, tuple[BatchRequest, datetime]] = {
            req.id: (req, at) for _call, req, _result, at in st.attempts if req.id is not None}
        results: dict[int, list[str]] = defaultdict(list)
        current: dict[int, str | None] = {}
        for chunk in chunks(list(reqs)):
            for request_id, result in conn.execute(
                    select(CallbackAttempt.request_id, CallbackAttempt.result)
                    .where(CallbackAttempt.request_id.in_(chunk))
                    .order_by(CallbackAttempt.id)):
                results[request_id].append(result)
            for request_id, written in conn.execute(select(Request.id, Request.result)
                                                    .where(Request.id.in_(chunk))):
                current[request_id] = written
        for request_id, (req, at) in reqs.items():
            _state, text = settlement(results[request_id], self.missed_callback_attempts)
            fill = result_to_fill(current.get(request_id), text)
            if fill is not None and not req.closed:
                st.touch_req(req, result=fill, updated_at=at)
                req.bump_version()
        st.attempts.clear()

    @staticmethod
    def new_histories(conn: Connection, reqs: Sequence[BatchRequest]) -> None:
        """Each new request's history (its caller's requests before it), for the pop of its
        ringing phones (journal/intake/early.py); one query for the batch."""
        asked = [req for req in reqs if req.caller_normalized and req.number is not None]
        for req in reqs:
            req.history = []
        for chunk in chunks(asked, HISTORY_CHUNK):
            statement, params = histories_select(
                [(req.caller_normalized, HISTORY_LIMIT, req.number) for req in chunk])
            rows = grouped(conn.execute(statement, params))
            for index, req in enumerate(chunk):
                req.history = pick(rows.get(index, ()))

    def histories(self, conn: Connection, st: Batch) -> None:
        """Fill the screen pops' ``history``: that caller's other requests, newest first.

        One query for every caller of the run (a UNION ALL of per-caller ``ORDER BY created_at
        DESC LIMIT n``, each walking the (caller_normalized, created_at) index), asking for as
        many more rows as the batch has new requests of that caller, so that leaving out the
        ones created after the ring still leaves HISTORY_LIMIT.
        """
        asked: list[Pop] = []
        for pop in st.pops:
            known = pop.request.history
            if known is None:
                asked.append(pop)
            else:  # a request new in this batch: read as it was written
                pop.note.data["history"] = [
                    {**item, "status": pop.statuses.get(item["number"], item["status"])}
                    for item in known]
        callers = list(dict.fromkeys(pop.request.caller_normalized for pop in asked))
        found: dict[str, list[Any]] = {}
        for chunk in chunks(callers, HISTORY_CHUNK):
            statement, params = histories_select(
                [(caller, HISTORY_LIMIT + 1 + st.new_per_caller.get(caller, 0), None)
                 for caller in chunk])
            rows = grouped(conn.execute(statement, params))
            for index, caller in enumerate(chunk):
                found[caller] = rows.get(index, [])
        for pop in asked:
            def later_or_own(number: int, pop: Pop = pop) -> bool:
                return number == pop.request.number or (number in st.new_numbers
                                                        and number > pop.last_new_number)
            pop.note.data["history"] = pick(found.get(pop.request.caller_normalized, ()),
                                            later_or_own, pop.statuses)
        st.pops.clear()


def _update_many(conn: Connection, table: Any,
                 items: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """UPDATE rows by key with ``executemany``: one statement per set of changed columns.

    ``_version_inc`` in the changes becomes ``version = version + :_version_inc``.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for key, changes in items:
        if not changes:
            continue
        groups[tuple(sorted(changes))].append({**key, **{f"v_{k}": v for k, v in changes.items()}})
    for columns, rows in groups.items():
        conn.execute(_update_by_key(table.name, columns), rows)


@lru_cache(maxsize=256)
def _update_by_key(table_name: str, columns: tuple[str, ...]) -> Update:
    table, key = _UPDATE_KEYS[table_name]
    values: dict[str, Any] = {}
    for column in columns:
        if column == "_version_inc":
            values["version"] = table.c.version + bindparam(f"v_{column}")
        else:
            values[column] = bindparam(f"v_{column}")
    return update(table).where(key).values(values)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
