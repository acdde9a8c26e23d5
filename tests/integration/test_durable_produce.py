"""Kafka's transactional produce through the outbox: ``Topic().produce(..., on_commit=True)`` and
``durable = True`` topics write the serialized record in the caller's transaction, and the
outbox relay sends exactly the bytes, key and headers a direct produce sends, iff the
transaction committed. Read back from the broker (Tansu)."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings

from django_messaging.core import durable, suppress
from django_messaging.kafka import kafka
from django_messaging.kafka.topic import Topic
from django_messaging.kafka.topic.avro import AvroTopic
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import Relay
from tests.helpers import read_topic
from tests.outbox.brokers import outbox_with
from tests.outbox.helpers import drive

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

KAFKA = {"kafka": {"BACKEND": "kafka"}}


def topics(bootstrap: str, unique_name, count: int = 2) -> list[str]:  # type: ignore[no-untyped-def]
    names = [unique_name("durable") for _ in range(count)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, 1) for n in names]).values():
        future.result(10)
    return names


def topic_class(base: type, name: str, **attrs: object) -> type:
    return type(f"T_{name.replace('-', '_')}"[:60], (base,), {"name": name, **attrs})


def relay_all() -> None:
    relay = Relay(transport_name="kafka")
    relay.start()
    try:
        drive(
            relay,
            lambda: not Published.objects.exclude(status=StatusChoice.SUCCEEDED).exists(),
            what="every outbox row sent",
        )
    finally:
        relay.stop()


def record(msg) -> tuple:  # type: ignore[no-untyped-def]
    return msg.key(), msg.value(), msg.headers()


@pytest.fixture(autouse=True)
def _fresh_clients(kafka_bootstrap: str):  # type: ignore[no-untyped-def]
    kafka.reset_clients()
    yield
    kafka.reset_clients()


def test_on_commit_sends_what_a_direct_produce_sends(kafka_bootstrap, unique_name) -> None:
    direct_name, durable_name = topics(kafka_bootstrap, unique_name)
    headers = {"trace": "abc", "raw": b"\x00\xff"}
    direct = topic_class(Topic, direct_name, value_serializer="json")
    durable_topic = topic_class(Topic, durable_name, value_serializer="json")
    direct().produce({"id": 1, "total": "9.50"}, key="order-1", headers=headers)
    direct().produce(None, key="order-1")  # a tombstone
    kafka.producer.flush(10)
    with outbox_with(KAFKA):
        with transaction.atomic():
            durable_topic().produce(
                {"id": 1, "total": "9.50"}, key="order-1", headers=headers, on_commit=True
            )
            durable_topic().produce(None, key="order-1", on_commit=True)
            assert Published.objects.count() == 2
        relay_all()
    sent = [record(m) for m in read_topic(kafka_bootstrap, durable_name, 2)]
    assert sent == [record(m) for m in read_topic(kafka_bootstrap, direct_name, 2)]
    assert sent[1][1] is None


def test_rollback_sends_nothing_and_suppression_writes_nothing(
    kafka_bootstrap, unique_name
) -> None:
    (name,) = topics(kafka_bootstrap, unique_name, 1)
    durable_topic = topic_class(Topic, name, durable=True)
    with outbox_with(KAFKA):
        with pytest.raises(RuntimeError), transaction.atomic():
            durable_topic().produce("rolled back", key="k")
            raise RuntimeError("rollback")
        with suppress([name]):
            durable_topic().produce("suppressed", key="k")
        assert not Published.objects.exists()
        durable_topic().produce("committed", key="k")  # autocommit: written at once
        relay_all()
    assert [m.value() for m in read_topic(kafka_bootstrap, name, 1)] == [b"committed"]
    assert [m.value() for m in read_topic(kafka_bootstrap, name, 2, timeout=1)] == [b"committed"]


def test_avro_topic_is_serialized_at_produce_time(kafka_bootstrap, unique_name, settings) -> None:
    direct_name, durable_name = topics(kafka_bootstrap, unique_name)
    schema = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}'
    registry = {**settings.MESSAGING["KAFKA"], "SCHEMA_REGISTRY": {"url": "mock://durable"}}
    with override_settings(MESSAGING={**settings.MESSAGING, "KAFKA": registry}):
        attrs = {"value_schema": schema, "key_schema": '{"type": "string"}'}
        topic_class(AvroTopic, direct_name, **attrs)().produce({"id": 7}, key="k7")
        kafka.producer.flush(10)
        with outbox_with(KAFKA):
            topic_class(AvroTopic, durable_name, durable=True, **attrs)().produce(
                {"id": 7}, key="k7"
            )
            row = Published.objects.get()
            assert bytes(row.payload)[:1] == b"\x00"  # Confluent framing, stored as bytes
            relay_all()
    direct_record = record(read_topic(kafka_bootstrap, direct_name, 1)[0])
    assert record(read_topic(kafka_bootstrap, durable_name, 1)[0]) == direct_record


def test_producer_arguments_are_refused_on_commit(unique_name) -> None:
    durable_topic = topic_class(Topic, unique_name("t"), durable=True)
    with outbox_with(KAFKA), pytest.raises(Exception, match="takes no producer arguments"):
        durable_topic().produce("x", partition=0)


def test_a_transport_that_is_not_kafka_is_refused(unique_name) -> None:
    durable_topic = topic_class(Topic, unique_name("t"), durable=True)
    with outbox_with({}), pytest.raises(ImproperlyConfigured, match="'kafka' is not defined"):
        durable_topic().produce("x")
    with (
        outbox_with({"kafka": {"BACKEND": "stomp"}}),
        pytest.raises(ImproperlyConfigured, match="need a kafka one"),
    ):
        durable_topic().produce("x")


def test_without_the_outbox_app_a_clear_error(monkeypatch, unique_name) -> None:
    monkeypatch.setattr(durable, "_senders", [])
    durable_topic = topic_class(Topic, unique_name("t"), durable=True)
    with pytest.raises(ImproperlyConfigured, match=r"'django_messaging\.outbox' to INSTALLED_APPS"):
        durable_topic().produce("x")
