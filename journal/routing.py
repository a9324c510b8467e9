"""Where a request goes when it is handed on (regulation: level 2 of the fund, or an SMO's
representatives). One rule for a telephone transfer (intake) and a journal action (workflow):
"a transfer to an SMO hands the request to that SMO" is written here only."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.routing import Target


@dataclass(frozen=True, slots=True)
class Route:
    """The level a request is handed to, and the SMO when the level is ``smo``."""

    level: str
    smo: str | None = None

    def columns(self) -> dict[str, str | None]:
        """The request's columns once handed over."""
        return {"level": self.level, "smo": self.smo, "status": "transferred"}


LEVEL_2 = Route("2")


def to_smo(code: str | None) -> Route:
    return Route("smo", code)


def route_of_transfer(target: str, smo: str | None) -> Route | None:
    """A telephone transfer to level 2 or to an SMO line hands the request over; a transfer
    anywhere else (an outside number, another operator of level 1) does not. (``target`` is a
    Target value; a spilled event comes back with a plain string, equal to it.)"""
    if target == Target.L2:
        return LEVEL_2
    if target == Target.SMO:
        return to_smo(smo)
    return None
