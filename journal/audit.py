"""The append-only audit log: who did or saw what, when, and from where."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from journal.models import AuditEntry
from journal.users import Principal


def audit(session: AsyncSession, user: Principal | None, action: str,
          request_number: int | None = None, remote: str | None = None,
          **detail: Any) -> None:
    """Add an audit record to the caller's transaction (nothing here updates or deletes)."""
    session.add(AuditEntry(at=datetime.now(UTC), user_login=user.login if user else None,
                           action=action, request_number=request_number, remote=remote,
                           detail=detail))
