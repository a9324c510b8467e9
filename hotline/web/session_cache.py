"""A short-lived memory of resolved sessions, so a request does not cost a database round trip.

Recording playback and page polling resolve the same token many times a second. An entry lives
at most ``ttl_s`` (and never past the session's own expiry); logout and a lockout drop entries
at once, so the only delay is for changes made from another process (``hotline users``), which
take effect within ``ttl_s``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from journal.users import ResolvedSession, token_digest


class SessionCache:
    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, ResolvedSession]] = {}

    def get(self, token: str) -> ResolvedSession | None:
        key = token_digest(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        valid_until, resolved = entry
        if time.monotonic() >= valid_until:
            del self._entries[key]
            return None
        return resolved

    def put(self, token: str, resolved: ResolvedSession) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare (10k live tokens): start over rather than track age
        left_s = (resolved.expires_at - datetime.now(UTC)).total_seconds()
        self._entries[token_digest(token)] = \
            (time.monotonic() + min(self.ttl_s, left_s), resolved)

    def forget_digest(self, digest: str) -> None:
        """Drop one session (logout), by the digest the hooks pass around."""
        self._entries.pop(digest, None)

    def forget_login(self, login: str) -> None:
        """Drop every session of a user (locked out, changed by an administrator)."""
        for key in [k for k, (_, r) in self._entries.items() if r.user.login == login]:
            del self._entries[key]
