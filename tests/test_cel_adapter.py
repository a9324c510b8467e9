"""The pure CEL adapter: rows → the tracker's input, grouping, the PBX's wall time."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from telephony import events as ev
from telephony.cel import BadCelRow, group_calls, parse_eventtime, row_of, to_events
from tests.cel_fixtures import cel_rows
from tests.conftest import scenario_dirs

SCENARIOS = scenario_dirs()
UTC_ZONE = ZoneInfo("UTC")


def scenario(prefix: str) -> list:
    found = next(s for s in SCENARIOS if s.name.startswith(prefix))
    return [row_of(r, UTC_ZONE) for r in cel_rows(found)]


def test_eventtime_is_the_pbx_wall_time() -> None:
    moscow = ZoneInfo("Europe/Moscow")
    assert parse_eventtime("2026-11-25 07:19:30", moscow) == datetime(2026, 11, 25, 4, 19, 30,
                                                                      tzinfo=UTC)
    assert parse_eventtime("2026-11-25 07:19:30.250000", moscow).microsecond == 250000
    assert parse_eventtime(datetime(2026, 11, 25, 7, 19, 30), moscow).hour == 4
    assert parse_eventtime("1795580370.5", moscow) == datetime.fromtimestamp(1795580370.5, UTC)
    for bad in ("", "yesterday", "2026-13-40 00:00:00", "1e400"):
        with pytest.raises(BadCelRow):
            parse_eventtime(bad, moscow)
    with pytest.raises(BadCelRow):
        row_of({"eventtime": "2026-11-25 04:19:30", "uniqueid": None}, UTC_ZONE)


def test_a_channel_that_joined_another_call_keeps_its_rows_together() -> None:
    """REFER/Replaces (s13): the consultation call's rows carry another Linkedid until the
    transfer joins them; they are one call."""
    rows = scenario("s13")
    assert len({r.linkedid for r in rows}) == 2
    (group,) = group_calls(rows)
    assert len(group) == len(rows)
    assert [r.at for r in group] == sorted(r.at for r in group)


def test_separate_calls_stay_apart_and_in_time_order() -> None:
    rows = scenario("s10")  # an internal call, then a call to the office line
    groups = group_calls(rows)
    assert len(groups) == 2
    assert groups[0][0].at <= groups[1][0].at


def test_a_trunk_leg_is_dialled_and_a_phone_leg_rings() -> None:
    events = [e for e, _at in to_events(group_calls(scenario("s05"))[0])]
    dials = [e for e in events if isinstance(e, ev.DialBegin)]
    assert [(d.dest.name, d.dial_string) for d in dials] == [
        ("PJSIP/smo-trunk-00000002", "PJSIP/88001002030@smo-trunk")]
    rings = [e.chan.name for e in events
             if isinstance(e, ev.ChannelUpdate) and e.chan.state == "5"]
    assert rings == ["PJSIP/101-00000001"]
    (transfer,) = [e for e in events if isinstance(e, ev.AttendedTransfer)]
    assert transfer.second_bridge and transfer.transferee is not None
