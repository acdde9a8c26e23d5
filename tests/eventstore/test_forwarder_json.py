"""The forwarder's JSON bodies when the application's transcoder is eventsourcing's own
``JSONTranscoder``: parsed without the transcoder's object hook and its custom types revived in
one walk, the bytes the same as the transcoder's own decoding gives, for every kind of state."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, StoredEvent, Transcoding

from django_messaging.eventstore.conf import application_env
from django_messaging.eventstore.forwarder import (
    UndecodableEvent,
    _json_decoder,
    _KafkaMessages,
    notification_message,
)

pytestmark = pytest.mark.django_db(transaction=True)


class Point:
    def __init__(self, at: uuid.UUID, weight: Decimal) -> None:
        self.at, self.weight = at, weight


class PointAsDict(Transcoding):
    """A custom type whose data holds custom types (nested markers)."""

    type = Point
    name = "point"

    def encode(self, obj: Point) -> dict[str, Any]:
        return {"at": obj.at, "weight": obj.weight}

    def decode(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"point_at": data["at"], "point_weight": data["weight"]}


class Ledger(Application[uuid.UUID]):
    name = "JsonLedger"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(PointAsDict())


class PlainJSONTranscoder(JSONTranscoder):
    """The transcoder decoding as always (no fast path for a subclass)."""


WHEN = dt.datetime(2026, 12, 6, 9, 0, 0, 123456, tzinfo=dt.UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def states(transcoder: JSONTranscoder) -> list[bytes]:
    encoded = transcoder.encode(
        {
            "timestamp": WHEN,
            "originator_topic": "x:Y",
            "id": ID,
            "amount": Decimal("12.3400"),
            "nested": [{"at": WHEN.replace(microsecond=0)}, Point(ID, Decimal("-0.5")), [ID]],
            "plain": {"_type_": "not a marker", "other": 1},
            "text": "naïve ☃ \u2028",
            "numbers": [1.5, 1e16, -0.0, 10**30, 3],
        }
    )
    return [
        encoded,
        transcoder.encode({"timestamp": WHEN, "trick": "sit"}),
        b'{"a":1,"a":{"_type_":"uuid_hex","_data_":"' + ID.hex.encode() + b'"}} \n',
        b'{"x":NaN,"y":-Infinity,"z":1E400,"s":"\\ud83d\\ude00"}',
        b'{"s":"\\ud800"}',
        b' {"lead":"space"}',
        b'{"bad":{"_type_":"unknown","_data_":1}}',
        b'{"bad":{"_type_":"uuid_hex","_data_":"no uuid"}}',
        b'{"open":',
        b'{"x":1} extra',
        b"[1, 2]",
        b"\xff",
        b'\xef\xbb\xbf{"bom":1}',
    ]


def test_json_bodies_are_what_the_transcoder_decoding_gives() -> None:
    fast_app = Ledger(env=application_env())
    plain_app = Ledger(
        env={**application_env(), "TRANSCODER_TOPIC": f"{__name__}:PlainJSONTranscoder"}
    )
    decode = _json_decoder(fast_app.mapper.transcoder)
    assert decode is not None
    assert _json_decoder(plain_app.mapper.transcoder) is None
    stored = states(fast_app.mapper.transcoder)  # type: ignore[arg-type]
    for state in stored[:3]:  # the fast way itself, not the transcoder behind it
        assert decode(state) == plain_app.mapper.transcoder.decode(state)
    fast_app.recorder.insert_events(
        [StoredEvent(uuid.uuid4(), 1, f"{__name__}:Ledger.Event", state) for state in stored]
    )
    notifications = fast_app.recorder.select_notifications(1, 20)
    assert len(notifications) == 13
    fast_pages = _KafkaMessages(fast_app, "topic", raw=False, undecodable="raw")
    plain_pages = _KafkaMessages(plain_app, "topic", raw=False, undecodable="raw")
    flagged = 0
    for notification in notifications:
        plain = notification_message(plain_app, notification, "topic", undecodable="raw")
        fast = notification_message(fast_app, notification, "topic", undecodable="raw")
        assert (fast.body, fast.headers, fast.content_type) == (
            plain.body,
            plain.headers,
            plain.content_type,
        )
        paged, plain_paged = fast_pages.message(notification), plain_pages.message(notification)
        assert (paged.body, paged.raw_headers, paged.headers, paged.destination) == (
            plain_paged.body,
            plain_paged.raw_headers,
            plain_paged.headers,
            "topic",
        )
        assert (paged.key, paged.ordering_key, paged.content_type) == (
            plain.key,
            plain.ordering_key,
            plain.content_type,
        )
        flagged += "dop-decode-error" in plain.headers
        if "dop-decode-error" in plain.headers:
            with pytest.raises(UndecodableEvent) as fast_error:
                notification_message(fast_app, notification, "topic")
            with pytest.raises(UndecodableEvent) as plain_error:
                notification_message(plain_app, notification, "topic")
            assert str(fast_error.value) == str(plain_error.value)
    # a lone surrogate (not UTF-8 when written), unknown type, bad uuid, cut, extra data, a
    # list, not UTF-8, BOM
    assert flagged == 8
