"""Where a transfer went: level 2 of the fund, an SMO line, or elsewhere (from configuration)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENDPOINT = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI|Console)/(?P<name>.+?)-[0-9a-f]{8}$")
_LOCAL = re.compile(r"^Local/(?P<exten>[^@]+)@")


@dataclass(frozen=True, slots=True)
class Routing:
    """The routing directory: 8-800 numbers, level-2 targets, SMO lines, outside-line prefixes."""

    hotline_numbers: frozenset[str]
    l2_targets: frozenset[str]
    smo_lines: dict[str, str]
    dial_prefixes: tuple[str, ...] = ("9",)

    def classify(self, dialled: str) -> tuple[str, str, str | None]:
        """``(to, target, smo)`` for a dialled number, outside-line prefix removed."""
        candidates = [dialled] + [
            dialled[len(p):] for p in self.dial_prefixes if p and dialled.startswith(p)
        ]
        for number in candidates:
            if number in self.smo_lines:
                return number, "smo", self.smo_lines[number]
        for number in candidates:
            if number in self.l2_targets:
                return number, "l2", None
        external = [n for n in candidates[1:] if len(n) >= 10]
        return (external[0] if external else dialled), "other", None


def endpoint_of(channel: str) -> str | None:
    """``PJSIP/101-0000002a`` → ``101``; None for Local and unknown channel names."""
    match = _ENDPOINT.match(channel)
    return match.group("name") if match else None


def local_exten(channel: str) -> str | None:
    """``Local/988001002030@from-operators-00000000;1`` → ``988001002030``."""
    match = _LOCAL.match(channel)
    return match.group("exten") if match else None


def dialled_number(dial_string: str) -> str:
    """The number in a Dial() string: ``88001002030@smo-trunk`` → ``88001002030``, ``PJSIP/101`` →
    ``101``."""
    target = dial_string.split("&", 1)[0]
    target = target.split("/", 1)[1] if "/" in target else target
    return target.split("@", 1)[0].split(",", 1)[0]


def is_trunk_dial(dial_string: str) -> bool:
    """A dial through a trunk (``number@trunk``) rather than to an operator's phone."""
    return "@" in dial_string
