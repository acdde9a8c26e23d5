from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.test import override_settings
from django.utils.dateparse import parse_datetime, parse_duration
from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st

from django_messaging.core import serializers
from django_messaging.core.exceptions import SerializerError
from django_messaging.core.serializers import available, get_serializer


class Upper:
    content_type = "text/upper"

    def dumps(self, value: object) -> bytes:
        return str(value).upper().encode()

    def loads(self, data: bytes) -> str:
        return data.decode().lower()


def test_json_keeps_the_meaning_of_django_types() -> None:
    json_ = get_serializer("json")
    at = dt.datetime(2026, 12, 2, 6, 45, 23, 123456, tzinfo=dt.UTC)
    value = {
        "at": at,
        "day": dt.date(2026, 12, 2),
        "time": dt.time(6, 45, 23, 1),
        "took": dt.timedelta(days=1, microseconds=1),
        "price": Decimal("10.50"),
        "id": uuid.UUID(int=7),
        "blob": b"\x00\xff",
        "lazy": gettext_lazy("hello"),
    }
    data = json_.loads(json_.dumps(value))
    assert parse_datetime(data["at"]) == at
    assert data["day"] == "2026-12-02"
    assert data["time"] == "06:45:23.000001"
    assert parse_duration(data["took"]) == dt.timedelta(days=1, microseconds=1)
    assert Decimal(data["price"]) == Decimal("10.50") and data["price"] == "10.50"
    assert uuid.UUID(data["id"]) == uuid.UUID(int=7)
    assert data["blob"] == "AP8="
    assert data["lazy"] == "hello"


def test_json_keeps_microseconds_that_django_encoder_drops() -> None:
    at = dt.datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC)
    ours = get_serializer("json").loads(get_serializer("json").dumps(at))
    django = json.loads(json.dumps(at, cls=DjangoJSONEncoder))
    assert parse_datetime(ours) == at
    assert parse_datetime(django) != at  # truncated to milliseconds


def test_json_output_is_compact_utf8() -> None:
    assert get_serializer("json").dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_json_falls_back_for_values_beyond_64_bits() -> None:
    big = 2**70
    assert get_serializer("json").loads(get_serializer("json").dumps({"n": big})) == {"n": big}


def test_json_rejects_unknown_types_clearly() -> None:
    with pytest.raises(SerializerError, match="not JSON serializable: object"):
        get_serializer("json").dumps({"x": object()})


def test_malformed_json_raises_serializer_error() -> None:
    with pytest.raises(SerializerError, match="malformed JSON"):
        get_serializer("json").loads(b"{not json")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )
)
def test_json_round_trips_json_values(value: object) -> None:
    json_ = get_serializer("json")
    assert json_.loads(json_.dumps(value)) == value


def test_string_and_bytes() -> None:
    assert get_serializer("string").dumps("é") == "é".encode()
    assert get_serializer("string").loads("é".encode()) == "é"
    assert get_serializer("bytes").dumps(b"\x00") == b"\x00"
    with pytest.raises(SerializerError, match="not UTF-8"):
        get_serializer("string").loads(b"\xff")
    with pytest.raises(SerializerError, match="expected bytes"):
        get_serializer("bytes").dumps("text")


def test_unknown_serializer_names_the_available_ones() -> None:
    with pytest.raises(SerializerError, match=r"unknown serializer 'yaml'; available: bytes, json"):
        get_serializer("yaml")


def test_no_pickle() -> None:
    assert "pickle" not in available()
    with pytest.raises(SerializerError):
        get_serializer("pickle")


def test_user_serializer_from_settings() -> None:
    path = f"{__name__}.Upper"
    with override_settings(MESSAGING={"SERIALIZERS": {"upper": path}}):
        assert get_serializer("upper").dumps("abc") == b"ABC"
        assert "upper" in available()
    with pytest.raises(SerializerError):
        get_serializer("upper")


def test_settings_override_builtins() -> None:
    with override_settings(MESSAGING={"SERIALIZERS": {"json": Upper}}):
        assert get_serializer("json").dumps("x") == b"X"
    assert get_serializer("json").dumps("x") == b'"x"'


def test_bad_serializer_path_is_explained() -> None:
    with (
        override_settings(MESSAGING={"SERIALIZERS": {"bad": "nowhere.Serializer"}}),
        pytest.raises(
            SerializerError, match=r"serializer 'bad': cannot import 'nowhere.Serializer'"
        ),
    ):
        get_serializer("bad")


def test_object_without_dumps_is_refused() -> None:
    with (
        override_settings(MESSAGING={"SERIALIZERS": {"bad": "collections.OrderedDict"}}),
        pytest.raises(SerializerError, match="no dumps"),
    ):
        get_serializer("bad")


def test_class_needing_arguments_is_explained() -> None:
    with (
        override_settings(MESSAGING={"SERIALIZERS": {"bad": "datetime.date"}}),
        pytest.raises(SerializerError, match="cannot be created without arguments"),
    ):
        get_serializer("bad")


def test_register_and_cache() -> None:
    serializers.register("upper-reg", Upper)
    try:
        assert get_serializer("upper-reg") is get_serializer("upper-reg")
        assert serializers.dumps("a", "upper-reg") == b"A"
    finally:
        serializers._REGISTERED.pop("upper-reg")
