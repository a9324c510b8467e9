"""A refused action, as every layer reports it: HTTP status, machine code, Russian message and
extra JSON fields. The domain raises it without knowing about HTTP handlers; the web layer's
error middleware answers it as the contract's ``{"error": {...}}``."""

from __future__ import annotations

from typing import Any


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
