"""WAV header inspection without decoding audio: duration, empty and truncated files.

MixMonitor (format_wav) writes a 44-byte RIFF header first and fills in the sizes only when the
file is closed, so a header-only file is an unanswered call (``empty``) and a data chunk that
claims more (or, unfinished, fewer) bytes than the file holds is ``truncated``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HEADER_BYTES = 44
_MAX_CHUNKS = 64  # a WAV file with more chunks before "data" is not what MixMonitor writes


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What the header says, checked against the real file size."""

    file_bytes: int
    valid: bool  # a RIFF/WAVE header with a fmt and a data chunk
    sample_rate: int = 0
    channels: int = 0
    bits_per_sample: int = 0
    data_offset: int = 0
    declared_data_bytes: int = 0
    available_data_bytes: int = 0

    @property
    def byte_rate(self) -> int:
        return self.sample_rate * self.channels * self.bits_per_sample // 8

    @property
    def audio_bytes(self) -> int:
        """Audio bytes really present (the smaller of declared and available, unless the
        header was never finalized and declares nothing)."""
        if self.declared_data_bytes == 0:
            return self.available_data_bytes
        return min(self.declared_data_bytes, self.available_data_bytes)

    @property
    def duration_s(self) -> float:
        rate = self.byte_rate
        return round(self.audio_bytes / rate, 3) if rate else 0.0

    @property
    def empty(self) -> bool:
        return self.valid and self.available_data_bytes == 0

    @property
    def truncated(self) -> bool:
        """Header invalid, or the data chunk size disagrees with the file size."""
        if not self.valid:
            return True
        if self.empty:
            return False
        # A RIFF pad byte after an odd-sized chunk is allowed.
        return self.declared_data_bytes not in (self.available_data_bytes,
                                                self.available_data_bytes - 1)

    @property
    def status(self) -> str:
        """The recording status this file earns: linked, empty or truncated."""
        if self.empty:
            return "empty"
        if self.truncated:
            return "truncated"
        return "linked"


def inspect_stream(stream: BinaryIO, file_bytes: int) -> WavInfo:
    """Parse the RIFF chunks up to ``data`` from an open binary stream."""
    head = stream.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return WavInfo(file_bytes, valid=False)
    fmt: tuple[int, int, int] | None = None
    offset = 12
    for _ in range(_MAX_CHUNKS):
        chunk = stream.read(8)
        if len(chunk) < 8:
            break
        chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        offset += 8
        if chunk_id == b"fmt ":
            body = stream.read(min(size, 64))
            if len(body) < 16:
                break
            _tag, channels, rate, _brate, _align, bits = struct.unpack("<HHIIHH", body[:16])
            fmt = (rate, channels, bits)
            stream.seek(offset + size + (size & 1))
        elif chunk_id == b"data":
            if fmt is None:
                break
            available = max(0, file_bytes - offset)
            return WavInfo(file_bytes, True, fmt[0], fmt[1], fmt[2], offset, size, available)
        else:
            stream.seek(offset + size + (size & 1))
        offset += size + (size & 1)
    return WavInfo(file_bytes, valid=False)


def inspect(path: Path) -> WavInfo:
    """Inspect a WAV file on disk."""
    with path.open("rb") as stream:
        return inspect_stream(stream, path.stat().st_size)
