"""Typed AMI events: the subset the call tracker needs, validated.

``parse_event`` turns the headers of one AMI message into one of the dataclasses below, returns
None for event types the service does not use, and raises :class:`MalformedEvent` when an event
it uses lacks a header it needs (the caller logs and skips it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

Headers = Mapping[str, "str | list[str]"]


class MalformedEvent(ValueError):
    """A known event type without the headers it must carry."""


@dataclass(frozen=True, slots=True)
class Chan:
    """The channel snapshot that Asterisk puts on channel events (optionally prefixed)."""

    name: str
    uniqueid: str
    linkedid: str
    state: str
    caller_num: str
    context: str
    exten: str


@dataclass(frozen=True, slots=True)
class NewChannel:
    chan: Chan


@dataclass(frozen=True, slots=True)
class ChannelUpdate:
    """Newstate and other events that only refresh what is known of a channel."""

    chan: Chan


@dataclass(frozen=True, slots=True)
class VarSet:
    chan: Chan
    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class Hangup:
    chan: Chan
    cause: str


@dataclass(frozen=True, slots=True)
class QueueCallerJoin:
    chan: Chan
    queue: str


@dataclass(frozen=True, slots=True)
class DialBegin:
    chan: Chan | None
    dest: Chan
    dial_string: str


@dataclass(frozen=True, slots=True)
class DialEnd:
    chan: Chan | None
    dest: Chan
    status: str


@dataclass(frozen=True, slots=True)
class Hold:
    chan: Chan


@dataclass(frozen=True, slots=True)
class Unhold:
    chan: Chan


@dataclass(frozen=True, slots=True)
class BridgeEnter:
    bridge: str
    chan: Chan


@dataclass(frozen=True, slots=True)
class BridgeLeave:
    bridge: str
    chan: Chan


@dataclass(frozen=True, slots=True)
class BlindTransfer:
    success: bool
    transferer: Chan
    transferee: Chan | None
    extension: str


@dataclass(frozen=True, slots=True)
class AttendedTransfer:
    success: bool
    transferer: Chan
    second_transferer: Chan | None
    transferee: Chan | None
    target: Chan | None
    second_bridge: str


@dataclass(frozen=True, slots=True)
class MixMonitorStart:
    chan: Chan


@dataclass(frozen=True, slots=True)
class FullyBooted:
    uptime_s: int | None


@dataclass(frozen=True, slots=True)
class Shutdown:
    restart: bool


@dataclass(frozen=True, slots=True)
class CoreShowChannel:
    chan: Chan
    bridge: str
    application: str
    application_data: str = ""  # Dial(): what the channel dials


@dataclass(frozen=True, slots=True)
class CoreShowChannelsComplete:
    count: int


Event = (
    NewChannel | ChannelUpdate | VarSet | Hangup | QueueCallerJoin
    | DialBegin | DialEnd | Hold | Unhold
    | BridgeEnter | BridgeLeave | BlindTransfer | AttendedTransfer | MixMonitorStart
    | FullyBooted | Shutdown | CoreShowChannel | CoreShowChannelsComplete
)

# VarSet is more than half of all AMI traffic; only these variables matter.
INTERESTING_VARIABLES = frozenset({"MIXMONITOR_FILENAME", "__FROM_DID", "FROM_DID"})


def _str(headers: Headers, key: str) -> str:
    value = headers.get(key, "")
    if isinstance(value, list):
        return value[-1]
    return value


def _int(headers: Headers, key: str) -> int:
    try:
        return int(_str(headers, key))
    except ValueError:
        return 0


def chan(headers: Headers, prefix: str = "") -> Chan | None:
    """The channel snapshot under ``prefix`` (e.g. ``Dest``), or None if it has no Uniqueid."""
    uniqueid = _str(headers, f"{prefix}Uniqueid")
    if not uniqueid:
        return None
    return Chan(
        name=_str(headers, f"{prefix}Channel"),
        uniqueid=uniqueid,
        linkedid=_str(headers, f"{prefix}Linkedid") or uniqueid,
        state=_str(headers, f"{prefix}ChannelState"),
        caller_num=_str(headers, f"{prefix}CallerIDNum"),
        context=_str(headers, f"{prefix}Context"),
        exten=_str(headers, f"{prefix}Exten"),
    )


def _need(headers: Headers, prefix: str = "") -> Chan:
    found = chan(headers, prefix)
    if found is None:
        raise MalformedEvent(f"{_str(headers, 'Event')} without {prefix}Uniqueid")
    return found


def _varset(h: Headers) -> VarSet | None:
    variable = _str(h, "Variable")
    if variable not in INTERESTING_VARIABLES:
        return None
    return VarSet(_need(h), variable, _str(h, "Value"))


def _newexten(h: Headers) -> VarSet | None:
    """A MixMonitor() application step: its first argument is the file (on Asterisk 13 the
    only place the name appears for a manager user without the ``dialplan`` class)."""
    if _str(h, "Application") != "MixMonitor":
        return None
    path = _str(h, "AppData").split(",", 1)[0].strip()
    return VarSet(_need(h), "MIXMONITOR_FILENAME", path) if path else None


def _uptime(h: Headers) -> FullyBooted:
    raw = _str(h, "Uptime")
    return FullyBooted(int(raw) if raw.isdigit() else None)


_PARSERS: dict[str, Callable[[Headers], Event | None]] = {
    "Newchannel": lambda h: NewChannel(_need(h)),
    "Newstate": lambda h: ChannelUpdate(_need(h)),
    "NewCallerid": lambda h: ChannelUpdate(_need(h)),
    "VarSet": _varset,
    "Newexten": _newexten,
    "Hangup": lambda h: Hangup(_need(h), _str(h, "Cause")),
    "QueueCallerJoin": lambda h: QueueCallerJoin(_need(h), _str(h, "Queue")),
    "DialBegin": lambda h: DialBegin(chan(h), _need(h, "Dest"), _str(h, "DialString")),
    "DialEnd": lambda h: DialEnd(chan(h), _need(h, "Dest"), _str(h, "DialStatus")),
    "Hold": lambda h: Hold(_need(h)),
    "Unhold": lambda h: Unhold(_need(h)),
    "BridgeEnter": lambda h: BridgeEnter(_str(h, "BridgeUniqueid"), _need(h)),
    "BridgeLeave": lambda h: BridgeLeave(_str(h, "BridgeUniqueid"), _need(h)),
    "BlindTransfer": lambda h: BlindTransfer(
        _str(h, "Result") == "Success",
        _need(h, "Transferer"),
        chan(h, "Transferee"),
        _str(h, "Extension"),
    ),
    "AttendedTransfer": lambda h: AttendedTransfer(
        _str(h, "Result") == "Success",
        _need(h, "OrigTransferer"),
        chan(h, "SecondTransferer"),
        chan(h, "Transferee"),
        chan(h, "TransferTarget"),
        _str(h, "SecondBridgeUniqueid"),
    ),
    "MixMonitorStart": lambda h: MixMonitorStart(_need(h)),
    "FullyBooted": _uptime,
    "Shutdown": lambda h: Shutdown(_str(h, "Restart") == "True"),
    "CoreShowChannel": lambda h: CoreShowChannel(
        _need(h), _str(h, "BridgeId"), _str(h, "Application"), _str(h, "ApplicationData")
    ),
    "CoreShowChannelsComplete": lambda h: CoreShowChannelsComplete(_int(h, "ListItems")),
}


def parse_event(headers: Headers) -> Event | None:
    """The typed event for these headers; None for a type the service ignores."""
    name = headers.get("Event")
    if not isinstance(name, str):
        raise MalformedEvent("message without a single Event header")
    parser = _PARSERS.get(name)
    if parser is None:
        return None
    return parser(headers)
