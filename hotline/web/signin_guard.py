"""Who is signing in from where: the client address and a per-address limit on failures.

The per-account lockout (``journal.users``) stops guessing one password; this stops one
address from trying many logins. The fund's operators sit behind one NAT address, so the limit
is generous (HOTLINE_SIGNIN_FAILURES_PER_SOURCE failures in HOTLINE_SIGNIN_SOURCE_WINDOW_S,
100 in 5 min by default) and only failures count; an address over it is answered 429 with
Retry-After, logged once per window, and counted in /metrics.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

import structlog

log = structlog.get_logger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SignInGuard:
    """Failed sign-ins per client address over a sliding window, and the sign-in counters."""

    def __init__(self, limit: int = 100, window_s: float = 300.0,
                 trusted_proxies: Iterable[str] = (), max_sources: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_sources = max_sources
        self._clock = clock
        self._proxies: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies)
        # address → times of its recent failures (at most `limit` kept); least recent first,
        # so the memory stays bounded whatever addresses a flood uses.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._warned_until: dict[str, float] = {}
        self.failures_total = 0
        self.throttled_total = 0
        self.lockouts_total = 0

    # ------------------------------------------------------------------ addresses
    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the peer's, unless the peer is a trusted proxy; then the
        right-most X-Forwarded-For entry that is not itself a trusted proxy (entries left of
        it were written by the client and prove nothing)."""
        if not self._proxies or peer is None or not forwarded_for or not self._trusted(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            if not self._trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # a garbled header: the proxy itself is all we know
        return peer

    # ------------------------------------------------------------------ the limit
    def _recent(self, source: str, now: float) -> deque[float] | None:
        times = self._failures.get(source)
        if times is not None:
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if not times:
                del self._failures[source]
                return None
        return times

    def retry_after(self, source: str | None) -> float | None:
        """Seconds until ``source`` may sign in again, or None when it may now."""
        if source is None:
            return None
        now = self._clock()
        times = self._recent(source, now)
        if times is None or len(times) < self.limit:
            return None
        self.throttled_total += 1
        if self._warned_until.get(source, 0.0) <= now:
            self._warned_until[source] = now + self.window_s
            log.warning("signin.source_throttled", source=source, failures=len(times),
                        window_s=self.window_s)
        return max(1.0, times[0] + self.window_s - now)

    def failed(self, source: str | None) -> None:
        """Count a failed sign-in from ``source``."""
        self.failures_total += 1
        if source is None:
            return
        now = self._clock()
        times = self._recent(source, now)
        if times is None:
            times = self._failures[source] = deque(maxlen=self.limit)
        times.append(now)
        self._failures.move_to_end(source)
        while len(self._failures) > self.max_sources:
            old, _ = self._failures.popitem(last=False)
            self._warned_until.pop(old, None)
        if len(self._warned_until) > self.max_sources:
            self._warned_until = {k: v for k, v in self._warned_until.items() if v > now}

    def metrics(self) -> list[str]:
        return [f"hotline_signin_failures_total {self.failures_total}",
                f"hotline_signin_throttled_total {self.throttled_total}",
                f"hotline_signin_lockouts_total {self.lockouts_total}"]
