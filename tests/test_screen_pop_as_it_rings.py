"""DESIGN §5 screen pop: the operator's card pops as the phone starts ringing, from the request
already committed with the call's start — not after the ringing's own batch is written — and
each ring pops each page once, with a stored id (journal/intake/early.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from journal.intake.early import EarlyPops
from journal.intake.state import Batch, BatchCall, BatchRequest
from journal.models import CallLeg, Notification
from journal.notes import Note, RequestScope
from telephony.callevents import (
    CallEnded,
    CallEvent,
    CallStarted,
    CallTransferred,
    LegRinging,
)
from tests.conftest import trace_items
from tests.helpers import wait_for
from tests.test_ws_events import (
    S01,
    S04,
    Client,
    connect,
    service_for,
    signed_in,
    start_ami,
)

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def hold_batches(services: Any, which: Callable[[Sequence[CallEvent]], bool]) -> asyncio.Event:
    """Make the intake wait, before writing, in every batch ``which`` picks, until the returned
    event is set."""
    gate = asyncio.Event()
    commit = services.intake._commit

    async def held(batch: Sequence[CallEvent], *args: Any, **kwargs: Any) -> bool:
        if which(batch):
            await gate.wait()
        return bool(await commit(batch, *args, **kwargs))

    services.intake._commit = held
    return gate


def has(kind: type) -> Callable[[Sequence[CallEvent]], bool]:
    return lambda batch: any(type(e) is kind for e in batch)


async def s01_and_operator(make_settings: Any, start_service: Any,
                           replay_peer: Any) -> tuple[Any, Client]:
    """One recorded call at its recorded pace (the phone rings 40 ms after the call starts)
    and the page of the operator whose phone rings, connected before it."""
    harness = await service_for(trace_items(S01), make_settings, start_service, replay_peer,
                                speed=1)
    operator = await connect(harness, await signed_in(harness, "op101", "operator",
                                                      extension="101"))
    return harness, operator


async def ringing_notes(services: Any) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)
                                         .where(Notification.type == "call.ringing")) or 0)


async def test_the_pop_leaves_as_the_phone_rings_while_its_batch_waits(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, operator = await s01_and_operator(make_settings, start_service, replay_peer)
    services = harness.services
    gate = hold_batches(services, has(LegRinging))
    start_ami(services)
    # The ringing's batch is held, and the pop is there all the same, numbered and stored.
    await wait_for(lambda: operator.of_type("call.ringing"), 10)
    (pop,) = operator.of_type("call.ringing")
    (created,) = operator.of_type("request.created")
    assert pop["request_number"] == created["request_number"]
    assert pop["extension"] == "101" and pop["caller_number"] == "+79161234567"
    assert pop["history"] == []
    assert isinstance(pop["id"], int)
    await wait_for(lambda: services.intake.early.popped == 1, 5)
    assert await ringing_notes(services) == 1
    assert not operator.of_type("call.answered")  # the batch is still held

    gate.set()
    await wait_for(lambda: operator.of_type("call.ended"), 20)
    await harness.wait_calls_done()
    # The ringing's batch wrote its leg and log, and no second note: one pop per ring.
    assert len(operator.of_type("call.ringing")) == 1
    assert await ringing_notes(services) == 1
    async with services.db.session() as session:
        rang = (await session.execute(select(CallLeg.extension, CallLeg.rang_at)
                                      .where(CallLeg.extension == "101"))).all()
    assert len(rang) == 1 and rang[0].rang_at is not None
    await operator.close()


async def test_a_ring_while_its_call_start_is_written_pops_at_that_commit(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, operator = await s01_and_operator(make_settings, start_service, replay_peer)
    services = harness.services
    rang = asyncio.Event()
    services.pipeline.listeners.append(
        lambda event: rang.set() if type(event) is LegRinging else None)
    start_gate = hold_batches(services, has(CallStarted))
    ring_gate = hold_batches(services, has(LegRinging))
    start_ami(services)
    await asyncio.wait_for(rang.wait(), 10)
    await asyncio.sleep(0.1)
    assert not operator.of_type("call.ringing")  # the request is not committed: no pop yet
    start_gate.set()
    await wait_for(lambda: operator.of_type("call.ringing"), 10)
    assert [f["type"] for f in operator.events][:2] == ["request.created", "call.ringing"]
    ring_gate.set()
    await wait_for(lambda: operator.of_type("call.ended"), 20)
    assert len(operator.of_type("call.ringing")) == 1
    assert await ringing_notes(services) == 1
    await operator.close()


async def test_rings_after_a_transfer_wait_for_their_batch(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    """A transfer may be re-routing the request in a batch not yet written: the level-2
    phone's pop comes from its own batch, with the scope that batch gives it."""
    harness = await service_for(trace_items(S04), make_settings, start_service, replay_peer)
    services = harness.services
    op201 = await connect(harness, await signed_in(harness, "op201", "operator",
                                                   extension="201"))
    start_ami(services)
    await wait_for(lambda: op201.of_type("call.ended"), 20)
    await harness.wait_calls_done()
    async with services.db.session() as session:
        (uniqueid,) = (await session.scalars(select(CallLeg.uniqueid)
                                             .where(CallLeg.extension == "201"))).all()
    assert not services.intake.early.claimed(uniqueid)
    assert len([f for f in op201.of_type("call.ringing") if f["extension"] == "201"]) == 1
    await op201.close()


async def test_a_pop_whose_note_cannot_be_stored_still_reaches_the_page(
        make_settings: Any, start_service: Any, replay_peer: Any) -> None:
    harness, operator = await s01_and_operator(make_settings, start_service, replay_peer)
    services = harness.services

    def refused(_work: Any, done: Callable[[BaseException | None], None]) -> None:
        asyncio.get_running_loop().call_soon(done, RuntimeError("database gone"))

    services.db.write_soon = refused
    start_ami(services)
    await wait_for(lambda: operator.of_type("call.ended"), 20)
    (pop,) = operator.of_type("call.ringing")
    assert pop["id"] is None and pop["extension"] == "101"
    assert services.intake.early.failed == 1
    await operator.close()


# ------------------------------------------------------------------ the rules, without I/O
class Recorder:
    """Stands for the database (stores at once, numbering notes) and the outbox."""

    def __init__(self) -> None:
        self.stored: list[Note] = []
        self.published: list[Note] = []

    def write_soon(self, work: Any, done: Callable[[BaseException | None], None]) -> None:
        notes = work.keywords["notes"]
        for note in notes:
            note.id = len(self.stored) + 1
            self.stored.append(note)
        done(None)

    def publish(self, notes: Sequence[Note]) -> None:
        self.published.extend(notes)


def committed(linkedid: str, number: int, *, ended: bool = False,
              history: list[dict[str, Any]] | None = None, legs: Sequence[str] = ()) -> Batch:
    req = BatchRequest(1, number, "79161234567", "+79161234567",
                       scope=RequestScope("1", None), history=history)
    call = BatchCall(1, linkedid, req, ended=ended)
    for uid in legs:
        call.legs[uid] = None  # type: ignore[assignment]
    return Batch(calls={linkedid: call})


def ring(linkedid: str, uniqueid: str, extension: str = "101") -> LegRinging:
    return LegRinging(linkedid, uniqueid, extension, f"PJSIP/{extension}-1", "l1", AT)


def pops() -> tuple[EarlyPops, Recorder]:
    recorder = Recorder()
    return EarlyPops(recorder, recorder), recorder  # type: ignore[arg-type]


async def test_rules_a_ring_of_a_committed_call_pops_once() -> None:
    early, recorder = pops()
    early.remember(committed("L1", 7, history=[{"number": 3}]))
    early.seen(ring("L1", "u1"))
    early.seen(ring("L1", "u1"))  # the same ring again (a reconnect)
    assert [(n.request_number, n.data["extension"], n.data["history"], n.id)
            for n in recorder.published] == [(7, "101", [{"number": 3}], 1)]
    assert early.claimed("u1") and not early.claimed("u2")
    early.seen(ring("L1", "u2", "102"))  # the queue's next phone
    assert [n.data["extension"] for n in recorder.published] == ["101", "102"]


async def test_rules_a_ring_before_its_start_commits_waits_for_it() -> None:
    early, recorder = pops()
    early.seen(ring("L1", "u1"))
    early.seen(ring("L2", "u9"))  # no hotline call: never committed, never popped
    assert recorder.published == []
    early.remember(committed("L1", 8, history=[]))
    assert [n.request_number for n in recorder.published] == [8]
    # A ring written by the very batch that committed the start pops from that batch.
    early.seen(ring("L3", "u3"))
    early.remember(committed("L3", 9, history=[], legs=["u3"]))
    assert [n.request_number for n in recorder.published] == [8]
    assert not early.claimed("u3")
    early.seen(CallEnded("L2", "abandoned", "hangup", AT))
    assert early._waiting == {}


async def test_rules_no_early_pop_after_a_transfer_nor_after_the_end() -> None:
    early, recorder = pops()
    early.remember(committed("L1", 7, history=[]))
    early.seen(CallTransferred("L1", "blind", "101", "7001", "l2", None, AT))
    early.remember(committed("L1", 7, history=[]))  # a batch from before the transfer
    early.seen(ring("L1", "u2", "201"))
    early.remember(committed("L4", 10, history=[]))
    early.seen(CallEnded("L4", "answered", "hangup", AT))
    early.seen(ring("L4", "u4"))
    early.remember(committed("L5", 11, ended=True, history=[]))
    early.seen(ring("L5", "u5"))
    assert recorder.published == []


async def test_rules_a_request_read_from_the_journal_keeps_its_history_from_its_start() -> None:
    early, recorder = pops()
    early.remember(committed("L1", 7, history=[{"number": 2}]))
    early.remember(committed("L1", 7, history=None))  # a later batch: read back, no history
    early.seen(ring("L1", "u1"))
    assert recorder.published[0].data["history"] == [{"number": 2}]
    # Calls this process did not see start (a restart) are popped by their batches.
    early.remember(committed("L6", 12, history=None))
    early.seen(ring("L6", "u6"))
    assert len(recorder.published) == 1



async def test_rules_the_rings_batch_publishes_after_the_pop() -> None:
    """An answer written by the ring's own batch never reaches a page before the pop."""
    early, recorder = pops()
    later: list[Callable[[], None]] = []
    write_now = recorder.write_soon
    recorder.write_soon = lambda work, done: later.append(  # type: ignore[method-assign]
        lambda: write_now(work, done))
    early.remember(committed("L1", 7, history=[]))
    early.seen(ring("L1", "u1"))
    waiting = asyncio.create_task(early.published(["u1", "u-other"]))
    await asyncio.sleep(0.01)
    assert not waiting.done() and recorder.published == []
    later.pop()()
    await asyncio.wait_for(waiting, 1)
    assert [n.request_number for n in recorder.published] == [7]
    await early.published(["u1"])  # nothing left to wait for
    await early.close()


async def test_rules_a_writer_that_refuses_the_store_costs_no_later_pop() -> None:
    early, recorder = pops()
    store = recorder.write_soon

    def closed(work: Any, done: Callable[[BaseException | None], None]) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    recorder.write_soon = closed  # type: ignore[method-assign]
    early.remember(committed("L1", 7, history=[]))
    early.seen(ring("L1", "u1"))
    recorder.write_soon = store  # type: ignore[method-assign]
    early.seen(ring("L1", "u2", "102"))
    assert [(n.data["extension"], n.id) for n in recorder.published] == [("101", None),
                                                                         ("102", 1)]
    assert early.failed == 1
