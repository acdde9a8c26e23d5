"""The one header model: repeated keys, bytes/text/None values, mapping and list input."""

from __future__ import annotations

import pytest

from django_messaging.core.headers import (
    as_bytes,
    as_text,
    first_header,
    header_dict,
    header_items,
    header_values,
    last_header,
)

REPEATED = [("trace", b"first"), ("other", b"x"), ("trace", b"second"), ("trace", b"third")]


def test_a_repeated_key_reads_first_last_or_every_value() -> None:
    assert first_header(REPEATED, "trace") == b"first"
    assert last_header(REPEATED, "trace") == b"third"
    assert header_values(REPEATED, "trace") == [b"first", b"second", b"third"]
    assert header_dict(REPEATED)["trace"] == b"third"  # what dict(pairs) keeps


def test_a_missing_key_is_none_and_no_values() -> None:
    for headers in (REPEATED, {"other": b"x"}, [], {}, None):
        assert first_header(headers, "missing") is None
        assert last_header(headers, "missing") is None
        assert header_values(headers, "missing") == []


def test_a_key_present_with_a_null_value_reads_none_but_counts_as_a_value() -> None:
    headers = [("k", None), ("k", b"later")]
    assert first_header(headers, "k") is None
    assert last_header(headers, "k") == b"later"
    assert header_values(headers, "k") == [None, b"later"]


@pytest.mark.parametrize(
    "headers",
    [
        {"a": b"1", "b": "2"},
        [("a", b"1"), ("b", "2")],
        (("a", b"1"), ("b", "2")),
        iter([("a", b"1"), ("b", "2")]),
    ],
    ids=["mapping", "list", "tuple", "iterator"],
)
def test_mapping_and_pair_inputs_read_alike(headers: object) -> None:
    items = header_items(headers)  # type: ignore[arg-type]
    assert items == [("a", b"1"), ("b", "2")]
    assert first_header(items, "a") == last_header(items, "a") == b"1"
    assert header_dict(items, text=True) == {"a": "1", "b": "2"}


def test_a_mapping_gives_its_one_value_to_first_and_last() -> None:
    table = {"x-id": "42", "x-none": None}
    assert first_header(table, "x-id") == last_header(table, "x-id") == "42"
    assert header_values(table, "x-id") == ["42"]
    assert first_header(table, "x-none") is None


def test_no_headers_at_all() -> None:
    assert header_items(None) == []
    assert header_dict(None) == {}
    assert header_dict(None, text=True) == {}


@pytest.mark.parametrize(
    "value,expected",
    [
        (b"raw", b"raw"),
        (bytearray(b"ba"), b"ba"),
        (memoryview(b"mv"), b"mv"),
        ("é", "é".encode()),
        (3, b"3"),
        (1.5, b"1.5"),
        (None, None),
    ],
)
def test_as_bytes(value: object, expected: bytes | None) -> None:
    assert as_bytes(value) == expected


@pytest.mark.parametrize(
    "value,expected",
    [
        ("text", "text"),
        (b"caf\xc3\xa9", "café"),
        (b"\xff", "\ufffd"),  # invalid UTF-8 is replaced, never raised
        (bytearray(b"ba"), "ba"),
        (memoryview(b"x"), "x"),
        (7, "7"),
        (None, None),
    ],
)
def test_as_text(value: object, expected: str | None) -> None:
    assert as_text(value) == expected


def test_text_that_strict_utf8_cannot_encode() -> None:
    lone_surrogate = "bad \ud800 value"
    with pytest.raises(UnicodeEncodeError):
        as_bytes(lone_surrogate)
    assert as_bytes(lone_surrogate, errors="replace") == b"bad ? value"


def test_bytes_and_text_round_trip() -> None:
    for text in ("", "plain", "ünïcødé ✓"):
        assert as_text(as_bytes(text)) == text
