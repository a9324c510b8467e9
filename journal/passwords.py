"""argon2 password hashing off the event loop, a few hashes at a time.

One argon2 verification costs about 100 ms of CPU; on the event loop, a burst of sign-ins held
up the AMI intake, the screen pops and /healthz behind it (issue 10, item 2). Hashes run in a
small pool of threads of their own (argon2-cffi releases the GIL), so the loop only waits for
the result; the pool's size is the bound on concurrent hashes (further ones queue, and a queued
one is dropped when its sign-in is cancelled), and its threads run at a lower CPU priority than
the event loop, as the recordings' sendfile threads do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASH_NICENESS = 10
MAX_CONCURRENT_HASHES = min(4, os.cpu_count() or 1)

_hasher = PasswordHasher()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_dummy_hash: str | None = None


def _lower_priority() -> None:
    # A sign-in may wait a little longer; call events and screen pops should not.
    # Not Linux, or not permitted: run at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_CONCURRENT_HASHES, thread_name_prefix="argon2",
                                       initializer=_lower_priority)
        return _pool


def hash_now(password: str) -> str:
    """Hash on the calling thread (CLI and set-up code with no event loop to protect)."""
    return _hasher.hash(password)


def _verify(stored_hash: str | None, password: str) -> bool:
    global _dummy_hash
    if stored_hash is None:
        # Unknown login or locked account: the same work as a real check, so the answer's
        # timing tells nothing. The dummy is made once (a benign race makes it twice at most).
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(os.urandom(16).hex())
        stored_hash = _dummy_hash
        password = ""  # never matches: the dummy's password is random
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_off_loop(password: str) -> str:
    """The argon2 hash of ``password``, computed in the hashing pool."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), hash_now, password)


async def verify_off_loop(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``, checked in the hashing pool. With
    ``stored_hash=None`` a dummy hash is checked (same cost) and the answer is False."""
    return await asyncio.get_running_loop().run_in_executor(
        _executor(), _verify, stored_hash, password)
