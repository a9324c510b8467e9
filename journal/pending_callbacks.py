"""Call-backs the service originated and the PBX has not reported yet: the dialled number →
the request's row id. The web layer registers one before it asks the PBX to dial (the PBX may
report the call before it answers the request) and withdraws it when the PBX refuses; intake
takes it when the outbound call starts, and gives it back if its transaction rolls back."""

from __future__ import annotations

from collections.abc import Mapping


class PendingCallbacks:
    def __init__(self) -> None:
        self._by_number: dict[str, int] = {}

    def expect(self, number: str, request_id: int) -> None:
        self._by_number[number] = request_id

    def withdraw(self, number: str) -> None:
        self._by_number.pop(number, None)

    def take(self, number: str) -> int | None:
        return self._by_number.pop(number, None)

    def give_back(self, taken: Mapping[str, int]) -> None:
        """Entries a rolled-back transaction took (a newer registration wins)."""
        for number, request_id in taken.items():
            self._by_number.setdefault(number, request_id)

    def as_dict(self) -> dict[str, int]:
        return dict(self._by_number)

    def __len__(self) -> int:
        return len(self._by_number)
