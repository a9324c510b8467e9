"""CEL rows (cel_pgsql's columns) → the tracker's input events, so a call rebuilt from CEL is
judged by the same rules as a live one.

Asterisk writes a CEL row from the same stasis messages that produce the AMI events the tracker
reads (main/cel.c at asterisk/asterisk f0c1c1a7b7):

- ``CHAN_START`` is a channel's first snapshot (cel.c:951-952, ``cel_channel_state_change``
  with no old snapshot) — AMI ``Newchannel``;
- ``ANSWER`` is the state turning Up (cel.c:978-979) — ``Newstate``;
- ``HANGUP`` then ``CHAN_END`` when the channel dies (cel.c:959-971), extra
  ``{hangupcause, hangupsource, dialstatus}`` — ``Hangup``;
- ``BRIDGE_ENTER`` / ``BRIDGE_EXIT`` (cel.c:1100-1122), extra ``{bridge_id, …}`` —
  ``BridgeEnter`` / ``BridgeLeave``;
- ``BLINDTRANSFER`` (cel.c:1348-1357), extra ``{extension, context, bridge_id,
  transferee_channel_name, transferee_channel_uniqueid}`` — ``BlindTransfer``;
- ``ATTENDEDTRANSFER`` on the transferer's leg towards the transferee (cel.c:1380-1420), extra
  ``{bridge1_id, channel2_name, channel2_uniqueid, bridge2_id, transferee_channel_…,
  transfer_target_channel_…}``; ``"N/A"`` when absent — ``AttendedTransfer``;
- ``LOCAL_OPTIMIZE(_BEGIN)`` and ``LINKEDID_END`` need no counterpart: the bridge moves that
  follow an optimization are rows of their own.

What CEL lacks is rebuilt from what it has: the dialled destination of a channel (AMI
``DialBegin``) is read from the ``Dial`` application data of the channels that dialled (a
trunk leg must be known as one, or it would pass for an operator's phone), and ringing from a
phone leg's creation (CEL has no ringing state: a phone channel is created to ring). A channel
whose Linkedid changes (REFER/Replaces joins two calls) keeps its Uniqueid, so rows are grouped
into calls by the union of Uniqueids and Linkedids, not by Linkedid alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from telephony import events as ev
from telephony.routing import endpoint_of, parse_dial

# cel_pgsql's columns (the reader selects these; ``id`` where the table has one).
COLUMNS = ("eventtype", "eventtime", "cid_name", "cid_num", "cid_ani", "cid_rdnis", "cid_dnid",
           "exten", "context", "channame", "appname", "appdata", "amaflags", "accountcode",
           "uniqueid", "linkedid", "peer", "userdeftype", "extra")
_UP = "6"  # AST_STATE_UP
_RINGING = "5"


class BadCelRow(ValueError):
    """A row without the facts every row must carry (uniqueid, a readable eventtime)."""


@dataclass(frozen=True, slots=True)
class CelRow:
    eventtype: str
    at: datetime  # aware, UTC
    uniqueid: str
    linkedid: str
    channame: str
    cid_num: str
    context: str
    exten: str
    appname: str
    appdata: str
    extra: str
    row_id: int | None = None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def parse_eventtime(value: Any, zone: tzinfo) -> datetime:
    """``YYYY-MM-DD HH:MM:SS[.ffffff]`` (or a datetime) in the PBX's wall time, or epoch
    seconds (``1795580370.123456``) → an aware UTC datetime."""
    if isinstance(value, datetime):
        local = value
    else:
        text = _text(value).strip()
        try:
            if "-" not in text:
                return datetime.fromtimestamp(float(text), UTC)
            local = datetime.fromisoformat(text)
        except (ValueError, OverflowError, OSError) as exc:
            raise BadCelRow(f"eventtime {text[:40]!r} is not a time") from exc
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC)


def row_of(mapping: Mapping[str, Any], zone: tzinfo) -> CelRow:
    """One database row (column name → value) as a CelRow; BadCelRow if unusable."""
    uniqueid = _text(mapping.get("uniqueid"))
    if not uniqueid:
        raise BadCelRow("row without uniqueid")
    raw_id = mapping.get("id")
    return CelRow(
        eventtype=_text(mapping.get("eventtype")).upper(),
        at=parse_eventtime(mapping.get("eventtime"), zone),
        uniqueid=uniqueid,
        linkedid=_text(mapping.get("linkedid")) or uniqueid,
        channame=_text(mapping.get("channame")),
        cid_num=_text(mapping.get("cid_num")),
        context=_text(mapping.get("context")),
        exten=_text(mapping.get("exten")),
        appname=_text(mapping.get("appname")),
        appdata=_text(mapping.get("appdata")),
        extra=_text(mapping.get("extra")),
        row_id=raw_id if isinstance(raw_id, int) else None,
    )


def extra_of_text(extra: str) -> dict[str, Any]:
    """The ``extra`` column's JSON object ({} when absent or unreadable)."""
    if not extra.startswith("{"):
        return {}
    try:
        data = json.loads(extra)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def extra_of(row: CelRow) -> dict[str, Any]:
    return extra_of_text(row.extra)


def _named(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) and value not in ("", "N/A") else ""


def group_calls(rows: Iterable[CelRow]) -> list[list[CelRow]]:
    """Rows → calls: connected by shared Uniqueids and Linkedids (and the channels a transfer
    names), each in the order Asterisk wrote them (eventtime, then id, then read order)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    listed = list(rows)
    for row in listed:
        union("u:" + row.uniqueid, "l:" + row.linkedid)
        if row.eventtype in ("ATTENDEDTRANSFER", "BLINDTRANSFER"):
            data = extra_of(row)
            for key in ("channel2_uniqueid", "transferee_channel_uniqueid",
                        "transfer_target_channel_uniqueid"):
                other = _named(data, key)
                if other:
                    union("u:" + row.uniqueid, "u:" + other)
    groups: dict[str, list[tuple[int, CelRow]]] = {}
    for index, row in enumerate(listed):
        groups.setdefault(find("u:" + row.uniqueid), []).append((index, row))
    ordered = []
    for members in groups.values():
        members.sort(key=lambda item: (item[1].at, item[1].row_id if item[1].row_id is not None
                                       else -1, item[0]))
        ordered.append([row for _i, row in members])
    ordered.sort(key=lambda group: group[0].at)
    return ordered


def _dial_targets(rows: Iterable[CelRow]) -> dict[str, str]:
    """Device → the Dial() destination that named it, from the dialling channels' app data
    (``PJSIP/88001002030@smo-trunk,60`` → ``smo-trunk`` → ``PJSIP/88001002030@smo-trunk``)."""
    found: dict[str, str] = {}
    for row in rows:
        if row.appname.lower() != "dial" or not row.appdata:
            continue
        for target in row.appdata.split(",", 1)[0].split("&"):
            target = target.strip()
            if target:
                found.setdefault(parse_dial(target).device, target)
    return found


def to_events(rows: list[CelRow]) -> Iterator[tuple[ev.Event, datetime]]:
    """The tracker's input for one call's rows (as grouped by :func:`group_calls`)."""
    targets = _dial_targets(rows)
    known: dict[str, ev.Chan] = {}

    def chan_of(row: CelRow, state: str = "") -> ev.Chan:
        chan = ev.Chan(name=row.channame, uniqueid=row.uniqueid, linkedid=row.linkedid,
                       state=state, caller_num=row.cid_num, context=row.context,
                       exten=row.exten)
        known[row.uniqueid] = chan
        return chan

    def named(uniqueid: str, name: str, linkedid: str) -> ev.Chan | None:
        if not uniqueid:
            return None
        chan = known.get(uniqueid)
        if chan is not None:
            return chan
        return ev.Chan(name=name, uniqueid=uniqueid, linkedid=linkedid, state="",
                       caller_num="", context="", exten="")

    for row in rows:
        kind = row.eventtype
        at = row.at
        if kind == "CHAN_START":
            chan = chan_of(row)
            yield ev.NewChannel(chan), at
            endpoint = endpoint_of(row.channame)
            if endpoint is None or row.uniqueid == row.linkedid:
                continue
            target = targets.get(endpoint)
            if target is not None and parse_dial(target).trunk:
                yield ev.DialBegin(None, chan, target), at
            else:
                yield ev.ChannelUpdate(chan_of(row, _RINGING)), at
        elif kind == "ANSWER":
            yield ev.ChannelUpdate(chan_of(row, _UP)), at
        elif kind == "BRIDGE_ENTER":
            bridge = _named(extra_of(row), "bridge_id")
            if bridge:
                yield ev.BridgeEnter(bridge, chan_of(row)), at
        elif kind == "BRIDGE_EXIT":
            bridge = _named(extra_of(row), "bridge_id")
            if bridge:
                yield ev.BridgeLeave(bridge, chan_of(row)), at
        elif kind == "HANGUP":
            cause = extra_of(row).get("hangupcause", "")
            yield ev.Hangup(chan_of(row), str(cause)), at
        elif kind == "BLINDTRANSFER":
            data = extra_of(row)
            transferer = chan_of(row)
            transferee = named(_named(data, "transferee_channel_uniqueid"),
                               _named(data, "transferee_channel_name"), row.linkedid)
            yield ev.BlindTransfer(True, transferer, transferee, _named(data, "extension")), at
        elif kind == "ATTENDEDTRANSFER":
            data = extra_of(row)
            yield ev.AttendedTransfer(
                True, chan_of(row),
                named(_named(data, "channel2_uniqueid"), _named(data, "channel2_name"),
                      row.linkedid),
                named(_named(data, "transferee_channel_uniqueid"),
                      _named(data, "transferee_channel_name"), row.linkedid),
                named(_named(data, "transfer_target_channel_uniqueid"),
                      _named(data, "transfer_target_channel_name"), row.linkedid),
                _named(data, "bridge2_id"),
            ), at
        elif row.uniqueid in known:
            # Any other row still tells the channel's current place (Linkedid, extension).
            chan_of(row, known[row.uniqueid].state)
