"""A short-lived memory of resolved sessions, so a request does not cost a database round trip.

Recording playback and page polling resolve the same token many times a second. An entry lives
at most ``ttl_s`` (and never past the session's own expiry); logout and a lockout drop entries
at once, so the only delay is for changes made from another process (``hotline users``), which
take effect within ``ttl_s``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from journal.ttlcache import TtlCache
from journal.users import ResolvedSession, token_digest


class SessionCache:
    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self._entries: TtlCache[str, ResolvedSession] = TtlCache(ttl_s, max_entries)

    def get(self, token: str) -> ResolvedSession | None:
        return self._entries.get(token_digest(token))

    def put(self, token: str, resolved: ResolvedSession) -> None:
        left_s = (resolved.expires_at - datetime.now(UTC)).total_seconds()
        self._entries.put(token_digest(token), resolved, ttl_s=left_s)

    def forget_digest(self, digest: str) -> None:
        """Drop one session (logout), by the digest the hooks pass around."""
        self._entries.pop(digest)

    def forget_login(self, login: str) -> None:
        """Drop every session of a user (locked out, changed by an administrator)."""
        self._entries.remove_if(lambda _digest, resolved: resolved.user.login == login)
