"""Websocket frames of the journal's notes (DESIGN §5): each note serialised and framed once
for every connection that receives it."""

from __future__ import annotations

import json
from collections import OrderedDict

from journal.notes import Note


class FrameCache:
    """Each notification serialised (and framed for the wire) once, not once per connection."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._frames: OrderedDict[int, str] = OrderedDict()
        self._wire: OrderedDict[int, bytes] = OrderedDict()

    def wire(self, note: Note) -> bytes:
        """The complete websocket text frame (server frames are unmasked, so every client
        gets the same bytes)."""
        note_id = note.id
        data = self._wire.get(note_id) if note_id is not None else None
        if data is None:
            data = websocket_text_frame(self.frame(note))
            if note_id is not None:
                self._wire[note_id] = data
                if len(self._wire) > self.size:
                    self._wire.popitem(last=False)
        return data

    def frame(self, note: Note) -> str:
        note_id = note.id
        if note_id is None:
            return json.dumps(note.frame(), ensure_ascii=False)
        text = self._frames.get(note_id)
        if text is None:
            text = json.dumps(note.frame(), ensure_ascii=False)
            self._frames[note_id] = text
            if len(self._frames) > self.size:
                self._frames.popitem(last=False)
        return text


def websocket_text_frame(text: str) -> bytes:
    """RFC 6455 frame: FIN + text opcode, unmasked, no compression."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload
