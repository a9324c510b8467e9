"""In-process publish/subscribe for journal notifications (websocket hub, tests, benchmarks).

Subscribers get bounded queues: a subscriber that falls behind is marked ``overflowed`` and its
owner drops it (the websocket hub closes the socket with a clear code) — never an unbounded
backlog. Several service instances would put PostgreSQL LISTEN/NOTIFY behind the same API.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

Notification = dict[str, Any]


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Notification]
    overflowed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class Bus:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()

    def subscribe(self, **meta: Any) -> Subscription:
        subscription = Subscription(asyncio.Queue(self.queue_size), meta=meta)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, notification: Notification) -> None:
        for subscription in list(self._subscribers):
            if subscription.overflowed:
                continue
            try:
                subscription.queue.put_nowait(notification)
            except asyncio.QueueFull:
                subscription.overflowed = True
                self._wake(subscription)

    @staticmethod
    def _wake(subscription: Subscription) -> None:
        # Make a waiting reader return so it notices the overflow.
        try:
            subscription.queue.get_nowait()
            subscription.queue.put_nowait({"type": "_overflow"})
        except (asyncio.QueueEmpty, asyncio.QueueFull):
            pass

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
