"""Where a transfer went: level 2 of the fund, an SMO line, or elsewhere (from configuration)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

# A device channel: ``PJSIP/101-0000002a``, ``SIP/150010002-0000000b``, ``IAX2/trunk-00001234``,
# ``DAHDI/1-1`` (DAHDI counts in decimal).
_ENDPOINT = re.compile(r"^(?:PJSIP|SIP|IAX2|Console|MOTIF|Skinny|UNISTIM|OOH323|H323|WebRTC)"
                       r"/(?P<name>.+?)-[0-9a-f]{8}$|^DAHDI/(?P<dahdi>.+?)-\d+$", re.IGNORECASE)
# Technologies a Dial() string or a queue interface may start with.
_TECH = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI|Local|Console|MOTIF|Skinny|UNISTIM|OOH323|H323)/",
                   re.IGNORECASE)
_LOCAL = re.compile(r"^Local/(?P<exten>[^@]+)@")


class Target(StrEnum):
    """Where a transfer went, as the journal tells them apart."""

    L2 = "l2"        # a level-2 operator of the fund
    SMO = "smo"      # an SMO's line
    OTHER = "other"  # anything else: a level-1 colleague, an outside number


@dataclass(frozen=True, slots=True)
class Routing:
    """The routing directory: 8-800 numbers, level-2 targets, SMO lines, outside-line prefixes."""

    hotline_numbers: frozenset[str]
    l2_targets: frozenset[str]
    smo_lines: dict[str, str]
    dial_prefixes: tuple[str, ...] = ("9",)

    def classify(self, dialled: str) -> tuple[str, Target, str | None]:
        """``(to, target, smo)`` for a dialled number, outside-line prefix removed."""
        candidates = [dialled] + [
            dialled[len(p):] for p in self.dial_prefixes if p and dialled.startswith(p)
        ]
        for number in candidates:
            if number in self.smo_lines:
                return number, Target.SMO, self.smo_lines[number]
        for number in candidates:
            if number in self.l2_targets:
                return number, Target.L2, None
        external = [n for n in candidates[1:] if len(n) >= 10]
        return (external[0] if external else dialled), Target.OTHER, None


def endpoint_of(channel: str) -> str | None:
    """``PJSIP/101-0000002a`` → ``101``; None for Local and unknown channel names."""
    match = _ENDPOINT.match(channel)
    if match is None:
        return None
    return match.group("name") or match.group("dahdi")


def local_exten(channel: str) -> str | None:
    """``Local/988001002030@from-operators-00000000;1`` → ``988001002030``."""
    match = _LOCAL.match(channel)
    return match.group("exten") if match else None


@dataclass(frozen=True, slots=True)
class DialTarget:
    """What one Dial() destination names: the device or trunk, and the number sent through it.

    ``number`` is None when the destination is a phone itself (``PJSIP/101``, ``SIP/150010002``,
    ``PJSIP/101/sip:101@10.0.0.5``); a number that differs from the device's name means a call
    out through a trunk (``89161112233@mts-trunk``, ``SIP/mts-trunk/89161112233``,
    ``DAHDI/g1/89161112233``, ``PJSIP/mts/sip:89161112233@carrier``).
    """

    device: str
    number: str | None

    @property
    def trunk(self) -> bool:
        return self.number is not None

    @property
    def dialled(self) -> str:
        return self.number if self.number is not None else self.device


def parse_dial(dial_string: str) -> DialTarget:
    """The target of a DialBegin's ``DialString`` (app_dial gives it without the technology,
    app_queue with it: ``101``, ``PJSIP/101``)."""
    target = _TECH.sub("", dial_string.split("&", 1)[0].strip(), count=1)
    target = target.split(",", 1)[0]
    at = target.find("@")
    slash = target.find("/")
    if at > 0 and (slash < 0 or at < slash):
        # number@endpoint (PJSIP) or exten@peer (chan_sip); options may follow a slash
        number, device = target[:at], target[at + 1:].split("/", 1)[0]
    elif slash > 0:
        device, rest = target[:slash], target[slash + 1:]
        if rest.lower().startswith(("sip:", "sips:", "tel:")):
            rest = rest.split(":", 1)[1]
        number = rest.split("@", 1)[0].split(";", 1)[0]
    else:
        return DialTarget(target, None)
    if not number or number == device:
        return DialTarget(device, None)
    return DialTarget(device, number)
