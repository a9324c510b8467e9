"""The byte framer: whole messages decoded, bad bytes replaced, oversized discarded."""

from __future__ import annotations

from telephony.framing import MAX_MESSAGE_BYTES, AmiFramer, encode_message, headers_of

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
NAME = "Иванова Мария Петровна"
MESSAGE = encode_message([("Event", "Newchannel"), ("Uniqueid", "1.1"),
                          ("CallerIDName", NAME), ("Linkedid", "1.1")])


def feed_all(framer: AmiFramer, pieces: list[bytes]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for piece in pieces:
        out.extend(framer.feed(piece))
    return out


def test_banner_is_taken_and_messages_follow() -> None:
    framer = AmiFramer()
    (msg,) = feed_all(framer, [BANNER + MESSAGE])
    assert framer.banner == "Asterisk Call Manager/11.0.0"
    assert dict(msg)["CallerIDName"] == NAME


def test_cyrillic_name_split_at_every_byte() -> None:
    """Every split point, including inside a two-byte Cyrillic character, yields the name."""
    data = BANNER + MESSAGE
    for cut in range(1, len(data)):
        framer = AmiFramer()
        (msg,) = feed_all(framer, [data[:cut], data[cut:]])
        assert dict(msg)["CallerIDName"] == NAME, cut
        assert framer.stats.undecodable == 0


def test_byte_by_byte() -> None:
    data = BANNER + MESSAGE * 3
    framer = AmiFramer()
    messages = feed_all(framer, [data[i:i + 1] for i in range(len(data))])
    assert [dict(m)["CallerIDName"] for m in messages] == [NAME] * 3


def test_non_utf8_bytes_are_replaced_not_dropped() -> None:
    framer = AmiFramer()
    framer.banner = ""
    (msg,) = feed_all(framer, [b"Event: UserEvent\r\nData: a\xff\xfeb\r\n\r\n"])
    assert dict(msg)["Data"] == "a\ufffd\ufffdb"
    assert framer.stats.undecodable == 1


def test_lines_without_colon_are_skipped() -> None:
    framer = AmiFramer()
    framer.banner = ""
    out = feed_all(framer, [b"garbage garbage\r\n\r\nEvent: X\r\nnonsense\r\nA: 1\r\n\r\n"])
    assert out == [[("Event", "X"), ("A", "1")]]
    assert framer.stats.malformed_lines == 2


def test_colon_without_space_and_empty_values() -> None:
    framer = AmiFramer()
    framer.banner = ""
    (msg,) = feed_all(framer, [b"Event:Foo\r\nEmpty: \r\nCallerIDNum: <unknown>\r\n\r\n"])
    assert msg == [("Event", "Foo"), ("Empty", ""), ("CallerIDNum", "<unknown>")]


def test_oversized_message_split_over_reads_is_discarded() -> None:
    framer = AmiFramer()
    framer.banner = ""
    huge = b"Event: VarSet\r\nValue: " + b"x" * (MAX_MESSAGE_BYTES + 10) + b"\r\n\r\n"
    after = b"Event: After\r\n\r\n"
    pieces = [huge[i:i + 65536] for i in range(0, len(huge), 65536)] + [after]
    assert feed_all(framer, pieces) == [[("Event", "After")]]
    assert framer.stats.oversized == 1


def test_oversized_message_in_one_read_is_discarded() -> None:
    framer = AmiFramer()
    framer.banner = ""
    huge = b"Event: VarSet\r\nValue: " + b"x" * (MAX_MESSAGE_BYTES + 10) + b"\r\n\r\n"
    out = feed_all(framer, [huge + b"Event: After\r\n\r\n"])
    assert out == [[("Event", "After")]]
    assert framer.stats.oversized == 1


def test_oversized_terminator_straddling_reads() -> None:
    """The discarded message's terminator split over two reads still ends the discard."""
    framer = AmiFramer(max_message_bytes=100)
    framer.banner = ""
    huge = b"Event: VarSet\r\nValue: " + b"x" * 200 + b"\r\n\r"
    out = feed_all(framer, [huge, b"\nEvent: After\r\n\r\n"])
    assert out == [[("Event", "After")]]


def test_no_banner_garbage_does_not_grow_without_limit() -> None:
    framer = AmiFramer(max_message_bytes=100)
    feed_all(framer, [b"z" * 500])
    assert framer.banner == ""
    assert len(framer._buffer) <= 100


def test_repeated_headers_become_lists() -> None:
    pairs = [("Event", "Newchannel"), ("ChanVariable", "A=1"), ("ChanVariable", "B=2"),
             ("Uniqueid", "1.1")]
    headers = headers_of(pairs)
    assert headers["ChanVariable"] == ["A=1", "B=2"]
    assert headers["Uniqueid"] == "1.1"
    assert headers_of([("A", "1")]) == {"A": "1"}


def test_encode_round_trip() -> None:
    framer = AmiFramer()
    framer.banner = ""
    pairs = [("Action", "Login"), ("Username", "journal"), ("Secret", "Пароль")]
    (msg,) = feed_all(framer, [encode_message(pairs)])
    assert msg == pairs
