"""AMI wire framing on bytes.

panoramisk 1.4 decodes every TCP chunk on its own and drops undecodable bytes, which mangles a
Cyrillic CallerIDName split across two chunks. Here bytes are buffered until a whole message
(terminated by an empty line) is present, and only then decoded; bad bytes are replaced, never
dropped silently, and an over-long message is discarded with a log line instead of growing the
buffer without limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

Pairs = list[tuple[str, str]]

MAX_MESSAGE_BYTES = 256 * 1024
BANNER_PREFIX = b"Asterisk Call Manager/"


@dataclass(slots=True)
class FramingStats:
    """Counters of what the framer skipped, exposed on /healthz and /metrics."""

    messages: int = 0
    oversized: int = 0
    undecodable: int = 0
    malformed_lines: int = 0
    malformed_frames: int = 0  # frames with junk lines or non-UTF-8 bytes (kept or not)
    details: list[str] = field(default_factory=list)

    @property
    def garbage(self) -> int:
        """Frames that were not clean AMI: oversized (discarded) or malformed."""
        return self.oversized + self.malformed_frames


class WarningGate:
    """Rate limit for a warning that garbage on the wire could repeat per frame: up to
    ``burst`` lines at once, then one per ``interval_s``; each line that goes out tells how
    many were held back since the previous one."""

    def __init__(self, burst: int = 5, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self.held = 0

    def allow(self) -> int | None:
        """None: keep quiet; else log now, with this many lines held back before."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) / self.interval_s)
        self._at = now
        if self._tokens < 1:
            self.held += 1
            return None
        self._tokens -= 1
        held, self.held = self.held, 0
        return held


class AmiFramer:
    """Splits a byte stream into AMI messages, each a list of (key, value) pairs in wire order."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_message_bytes
        self._discarding = False
        self.banner: str | None = None
        self.stats = FramingStats()

    def feed(self, data: bytes) -> Iterator[Pairs]:
        """Add bytes; yield every message that is now complete."""
        buffer = self._buffer
        buffer += data
        if self.banner is None and not self._take_banner():
            if len(buffer) > self._max:  # no banner line ever: stop looking for one
                self.banner = ""
            else:
                return
        start = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                break
            if self._discarding:
                # The tail of an oversized message: skip up to its terminator.
                self._discarding = False
                start = end + 4
                continue
            if end - start > self._max:
                # Arrived whole within one read: still over the limit, still discarded.
                self._oversized()
                start = end + 4
                continue
            chunk = bytes(buffer[start:end])
            start = end + 4
            if chunk:
                pairs = self._parse(chunk)
                if pairs:
                    self.stats.messages += 1
                    yield pairs
        if start:
            del buffer[:start]
        if self._discarding or len(buffer) > self._max:
            if not self._discarding:
                self._oversized()
                self._discarding = True
            # Keep the last 3 bytes: the terminator may straddle this read and the next.
            del buffer[:-3]

    def _oversized(self) -> None:
        self.stats.oversized += 1
        self._note(f"message over {self._max} bytes discarded")

    def _take_banner(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        line = bytes(self._buffer[:end])
        if line.startswith(BANNER_PREFIX):
            self.banner = line.decode("utf-8", "replace")
            del self._buffer[: end + 2]
        else:
            self.banner = ""
        return True

    def _parse(self, chunk: bytes) -> Pairs:
        bad = False
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            bad = True
            self.stats.undecodable += 1
            self._note("non-UTF-8 bytes replaced")
            text = chunk.decode("utf-8", "replace")
        pairs: Pairs = []
        for line in text.split("\r\n"):
            key, sep, value = line.partition(": ")
            if not sep:
                key, sep, value = line.partition(":")
                if not sep:
                    if line.strip():
                        bad = True
                        self.stats.malformed_lines += 1
                        self._note(f"line without a colon skipped: {line[:80]!r}")
                    continue
                value = value.strip()
            pairs.append((key.strip(), value))
        if bad:
            self.stats.malformed_frames += 1
        return pairs

    def _note(self, detail: str) -> None:
        details = self.stats.details
        details.append(detail)
        if len(details) > 20:
            del details[0]


def encode_message(pairs: Pairs | list[list[str]]) -> bytes:
    """Serialise one AMI message (used by the replay peer and for actions)."""
    out = [f"{key}: {value}" for key, value in pairs]
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8")


def headers_of(pairs: Pairs) -> dict[str, str | list[str]]:
    """A dict of the pairs; a repeated key maps to a list of its values in wire order."""
    headers: dict[str, str | list[str]] = dict(pairs)
    if len(headers) != len(pairs):
        headers = {}
        for key, value in pairs:
            old = headers.get(key)
            if old is None:
                headers[key] = value
            elif isinstance(old, list):
                old.append(value)
            else:
                headers[key] = [old, value]
    return headers
