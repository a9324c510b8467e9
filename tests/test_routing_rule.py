"""Regulation: a call handed to level 2 or to an SMO's line hands the request over — one rule
(journal/routing.py) for a telephone transfer (intake) and a journal action (workflow)."""

from __future__ import annotations

from journal.pending_callbacks import PendingCallbacks
from journal.routing import LEVEL_2, Route, route_of_transfer, to_smo
from telephony.routing import Routing, Target


def test_a_transfer_to_level_2_or_an_smo_line_hands_the_request_over() -> None:
    assert route_of_transfer(Target.L2, None) == LEVEL_2
    assert route_of_transfer(Target.SMO, "SMO1") == Route("smo", "SMO1")
    assert route_of_transfer(Target.OTHER, None) is None
    # A spilled event comes back from JSON with plain strings.
    assert route_of_transfer("smo", "SMO2") == to_smo("SMO2")


def test_the_telephone_and_the_journal_write_the_same_columns() -> None:
    assert LEVEL_2.columns() == {"level": "2", "smo": None, "status": "transferred"}
    assert to_smo("SMO1").columns() == {"level": "smo", "smo": "SMO1", "status": "transferred"}


def test_the_directory_names_the_target_kinds() -> None:
    routing = Routing(frozenset({"88007070561"}), frozenset({"7001"}),
                      {"88001002030": "SMO1"}, ("9",))
    assert routing.classify("7001")[1] is Target.L2
    assert routing.classify("988001002030") == ("88001002030", Target.SMO, "SMO1")
    assert routing.classify("989161112233") == ("89161112233", Target.OTHER, None)


def test_a_pending_call_back_taken_by_a_rolled_back_batch_is_given_back() -> None:
    pending = PendingCallbacks()
    pending.expect("+79161234567", 7)
    taken = {"+79161234567": pending.take("+79161234567") or 0}
    assert len(pending) == 0
    pending.give_back(taken)
    assert pending.as_dict() == {"+79161234567": 7}
    pending.expect("+79161234567", 8)  # a newer registration wins over a given-back one
    pending.give_back(taken)
    assert pending.as_dict() == {"+79161234567": 8}
    pending.withdraw("+79161234567")
    assert pending.take("+79161234567") is None
