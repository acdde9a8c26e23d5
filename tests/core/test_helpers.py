from __future__ import annotations

import pytest

from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.headers import as_bytes, as_text, header_dict, header_items, last_header
from django_messaging.core.imports import import_from_setting
from django_messaging.core.redact import MASK, is_secret_key, redact, redact_url


def test_header_shapes() -> None:
    pairs = [("a", b"1"), ("a", b"2"), ("b", None)]
    assert header_items(pairs) == pairs
    assert header_items({"a": 1}) == [("a", 1)]
    assert header_items(None) == []
    assert header_dict(pairs) == {"a": b"2", "b": None}
    assert header_dict(pairs, text=True) == {"a": "2", "b": None}
    assert last_header(pairs, "a") == b"2"
    assert last_header(pairs, "missing") is None


def test_header_conversions() -> None:
    assert as_bytes("é") == "é".encode()
    assert as_bytes(3) == b"3"
    assert as_bytes(None) is None
    assert as_text(b"\xff") == "\ufffd"
    assert as_text(memoryview(b"x")) == "x"


def test_redaction() -> None:
    assert (
        redact_url("amqps://user:p%40ss@host:5671/vhost") == f"amqps://user:{MASK}@host:5671/vhost"
    )
    assert redact_url("amqp://host/") == "amqp://host/"
    config = {
        "sasl.password": "pw",
        "sasl.username": "me",
        "nested": {"CONNECT_AUTH_PASSWORD": "x"},
    }
    assert redact(config) == {
        "sasl.password": MASK,
        "sasl.username": "me",
        "nested": {"CONNECT_AUTH_PASSWORD": MASK},
    }
    assert is_secret_key("ssl.key.password") and not is_secret_key("bootstrap.servers")


def test_import_from_setting() -> None:
    assert import_from_setting("json.dumps", "X") is __import__("json").dumps
    assert import_from_setting(len, "X") is len
    with pytest.raises(
        ConfigurationError, match=r"MESSAGING\['OUTBOX'\]\['X'\] = 'no.where' cannot be imported"
    ):
        import_from_setting("no.where", "MESSAGING['OUTBOX']['X']")
