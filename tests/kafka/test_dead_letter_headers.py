"""Retry and dead-letter headers say what failed and where, never what the message held."""

from __future__ import annotations

import pytest
from django.db import connection

from django_messaging.kafka.topic import TopicConsumer
from tests.kafka.conftest import headers_of, make_consumer, make_topic, produce_raw, run_until

pytestmark = pytest.mark.django_db(transaction=True)

#: Stores a message body as JSON: PostgreSQL refuses a NUL character in it and quotes the body.
STORE_AS_JSON = "SELECT %s::jsonb"


def test_a_database_error_quoting_the_body_stays_out_of_the_dead_letter_headers(
    create_topic, group, kafka_bootstrap, read
):
    if connection.vendor != "postgresql":
        pytest.skip("the JSON NUL check is PostgreSQL's")
    name = create_topic()
    body = b'{"note": "confidential\\u0000customer"}'
    produce_raw(kafka_bootstrap, name, [body, b'{"note": "fine"}'])
    seen: list[bytes] = []

    def consume(self, msg):
        seen.append(msg.value())
        with connection.cursor() as cursor:
            cursor.execute(STORE_AS_JSON, [msg.value().decode()])

    topic = make_topic(TopicConsumer, name, consume=consume, atomic=False)
    run_until(make_consumer(group, topic())(), lambda: len(seen) == 2)
    (dead,) = read(f"{group}.{name}.dlt", 1)
    assert dead.value() == body
    headers = headers_of(dead)
    reason = f"DataError handling {name} [0] @0".encode()
    assert headers["DEAD_LETTER_MESSAGE"] == reason
    assert headers["EXCEPTION_MESSAGE"] == reason
    assert headers["EXCEPTION_CLASS"].endswith(b".DataError")
    assert b"Traceback" in headers["EXCEPTION_TRACEBACK"]
    assert headers["EXCEPTION_TRACEBACK"] == headers["DEAD_LETTER_DETAIL"]
    for key in ("DEAD_LETTER_MESSAGE", "DEAD_LETTER_DETAIL", "EXCEPTION_MESSAGE"):
        for leak in (b"confidential", b"customer", b"JSON data", b"jsonb", b"SELECT"):
            assert leak not in headers[key], (key, headers[key])
    for leak in (b"confidential", b"JSON data", b"jsonb", b"SELECT"):
        assert leak not in headers["EXCEPTION_TRACEBACK"], headers["EXCEPTION_TRACEBACK"]
