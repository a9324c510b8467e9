"""Sending a file's bytes to an HTTP client from worker threads instead of the event loop.

asyncio's ``loop.sendfile`` runs every ``sendfile(2)`` call on the event-loop thread and
re-registers the socket with epoll between chunks, so with tens of concurrent downloads the loop
spends its turns copying audio while new requests (and call events) wait, and only one core
sends. Here each transfer runs in a thread of a bounded pool: the thread calls ``sendfile``
on a duplicate of the socket's descriptor and waits with ``poll`` when the socket buffer is
full (both release the GIL). The duplicate keeps the socket alive even if the loop closes the
connection meanwhile, so a descriptor number can never be reused under a running transfer.

When every thread is busy, or the socket still holds unsent bytes, the caller falls back to
``loop.sendfile``; a client that accepts nothing for ``stall_s`` seconds is cut off.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from concurrent.futures import ThreadPoolExecutor

SENDER_NICENESS = 10


class ClientStalled(ConnectionError):
    """The client took no bytes for the whole stall timeout."""


class SendfileThreads:
    def __init__(self, max_threads: int = 64, stall_s: float = 60.0) -> None:
        self.max_threads = max_threads
        self.stall_s = stall_s
        self.busy = 0
        self._pool = ThreadPoolExecutor(max_threads, thread_name_prefix="sendfile",
                                        initializer=_lower_priority)

    def can_take(self, transport: asyncio.Transport) -> bool:
        """A thread is free and nothing else is queued on this connection."""
        return (self.busy < self.max_threads and transport.get_write_buffer_size() == 0
                and transport.get_extra_info("socket") is not None)

    async def send(self, transport: asyncio.Transport, source: int, offset: int,
                   count: int) -> int:
        """Send ``count`` bytes of the opened file ``source`` (a descriptor) from ``offset``;
        returns the bytes sent (fewer when the file shrank since it was opened)."""
        fd = os.dup(transport.get_extra_info("socket").fileno())
        # Our own duplicate too: the caller may close its file while the thread still runs.
        source = os.dup(source)
        self.busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, _send_blocking, fd, source, offset, count,
                int(self.stall_s * 1000))
        finally:
            self.busy -= 1
            os.close(fd)
            os.close(source)

    def close(self) -> None:
        """Stop taking transfers; running ones end by themselves (done, client gone, stalled)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority() -> None:
    # Downloads yield to the event loop (call events, screen pops) when the CPU is short.
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SENDER_NICENESS)


def _send_blocking(fd: int, source: int, offset: int, count: int, stall_ms: int) -> int:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    sent = 0
    while sent < count:
        try:
            step = os.sendfile(fd, source, offset + sent, count - sent)
        except BlockingIOError:
            if not poller.poll(stall_ms):
                raise ClientStalled(f"no progress for {stall_ms} ms") from None
            continue
        if step == 0:
            break  # the file is shorter than it was when opened
        sent += step
    return sent
