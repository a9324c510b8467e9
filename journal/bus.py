"""Publish/subscribe for journal notifications (websocket hub, playback index, benchmarks).

``Bus`` is what the rest of the service uses; ``LocalBus`` is the in-process one (one service
instance, the default) and journal/pgbus.py's ``PostgresBus`` carries the same API across
service instances on one PostgreSQL (``HOTLINE_BUS=postgresql``).

Subscribers get bounded queues: a subscriber that falls behind is marked ``overflowed`` and its
owner drops it (the websocket hub closes the socket with a clear code) — never an unbounded
backlog. Besides notifications (stored, numbered) the bus carries *control* messages (a
session ended, a user changed, a call-back is pending): never stored, handled by every
instance's registered handlers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from journal.notes import Note

log = structlog.get_logger(__name__)

# A control message: ``{"kind": ..., ...}``, JSON-serialisable, small (it rides a NOTIFY).
Control = dict[str, Any]
ControlHandler = Callable[[Control], None]


class NoteQueue:
    """A bounded FIFO for one consumer: ``asyncio.Queue``'s methods that subscribers use, at a
    fraction of the cost. A notification is put into every subscriber's queue — a thousand
    websockets — while the event loop waits, and ``asyncio.Queue.put_nowait`` (task
    accounting, getter wake-ups) made that ~1.5 ms per notification."""

    __slots__ = ("_items", "_waiter", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Note] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Note) -> None:
        if len(self._items) >= self.maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        self.wake()

    def get_nowait(self) -> Note:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    def wake(self) -> None:
        """Make a waiting ``get`` return None: its owner has something to look at that is not
        a note (the subscription overflowed; the hub has connections to retry)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Note | None:
        """The next note; None when woken without one (see ``wake``)."""
        if not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
            if not self._items:
                return None
        return self._items.popleft()


@dataclass(eq=False)
class Subscription:
    queue: NoteQueue
    overflowed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class Bus(Protocol):
    """What the service needs of a bus, whichever carries it."""

    def subscribe(self, **meta: Any) -> Subscription: ...

    def unsubscribe(self, subscription: Subscription) -> None: ...

    def publish(self, notification: Note) -> None:
        """Hand a committed notification (with its stored ``id``) to every subscriber."""

    def control(self, message: Control) -> None:
        """Send a control message to every instance's handlers (this one's included)."""

    def on_control(self, handler: ControlHandler) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def subscribers(self) -> int: ...


class LocalBus:
    """The in-process bus: one service instance."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._handlers: list[ControlHandler] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def on_control(self, handler: ControlHandler) -> None:
        self._handlers.append(handler)

    def control(self, message: Control) -> None:
        self.deliver_control(message)

    def deliver_control(self, message: Control) -> None:
        """Run every handler; one that fails is logged and never stops the others."""
        for handler in tuple(self._handlers):
            try:
                handler(message)
            except Exception:
                log.exception("bus.control_handler_failed", kind=message.get("kind"))

    def subscribe(self, **meta: Any) -> Subscription:
        subscription = Subscription(NoteQueue(self.queue_size), meta=meta)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, notification: Note) -> None:
        for subscription in tuple(self._subscribers):
            if subscription.overflowed:
                continue
            try:
                subscription.queue.put_nowait(notification)
            except asyncio.QueueFull:
                subscription.overflowed = True
                subscription.queue.wake()  # a waiting reader returns and notices

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
