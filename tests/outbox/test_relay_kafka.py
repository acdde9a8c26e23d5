"""The outbox relayed to Kafka (Tansu) through a named transport: record keys, per-key order
with two relays and a SIGKILLed one, a missing topic; read back from the broker."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from django.test.utils import isolate_apps

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.decorators import Config, NewRow, insert_outbox_rows, publish
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import Relay
from tests.helpers import read_topic
from tests.outbox.brokers import (
    assert_per_key_order,
    kafka_transport,
    keyed_rows,
    kill_one_of_two_relays,
    new_topic,
    outbox_with,
    read_distinct,
    relay_env,
    sent,
)
from tests.outbox.helpers import drive
from tests.project.outbox_app.models import Unpublished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


# Kafka -------------------------------------------------------------------------------------


def test_kafka_per_key_order_with_two_relays_and_a_sigkill(kafka_bootstrap, processes) -> None:
    name = new_topic(kafka_bootstrap)
    transports = {"events": kafka_transport(kafka_bootstrap)}
    keys, per_key = 8, 100
    total = keys * per_key
    keyed_rows("events", name, keys, per_key)
    held = kill_one_of_two_relays(
        processes, relay_env(transports, kafka_bootstrap), "events", total
    )
    records = read_distinct(kafka_bootstrap, name, total)
    seen = [(r.key().decode(), json.loads(r.value())["seq"]) for r in records]
    assert all(json.loads(r.value())["key"] == r.key().decode() for r in records)
    assert_per_key_order(seen, total, held)


def test_config_names_a_kafka_transport_and_a_key(kafka_bootstrap) -> None:
    name = new_topic(kafka_bootstrap, partitions=1)
    with (
        outbox_with({"events": kafka_transport(kafka_bootstrap)}),
        isolate_apps("tests.project.outbox_app"),
    ):

        @publish([Config(destination=name, transport="events", key="field_one")])
        class Keyed(Unpublished):
            class Meta:
                proxy = True
                app_label = "outbox_app"

        Keyed(field_one="customer-1", field_two="a").save()
        Keyed(field_one="customer-2", field_two="b").save()
        rows = list(Published.objects.order_by("added"))
        assert [(r.transport, r.key) for r in rows] == [
            ("events", "customer-1"),
            ("events", "customer-2"),
        ]
        relay = Relay(transport_name="events")
        relay.start()
        try:
            drive(relay, lambda: sent("events") == 2, what="both rows confirmed by Kafka")
        finally:
            relay.stop()
    records = read_topic(kafka_bootstrap, name, 2)
    assert [r.key() for r in records] == [b"customer-1", b"customer-2"]
    assert [json.loads(r.value())["field_two"] for r in records] == ["a", "b"]
    headers = dict(records[0].headers())
    assert headers["dop-msg-id"] == str(rows[0].id).encode()


def test_kafka_missing_topic_keeps_the_row_with_the_reason(kafka_bootstrap) -> None:
    missing = f"outbox-missing-{uuid.uuid4().hex[:8]}"
    insert_outbox_rows("default", [NewRow(missing, None, {"a": 1}, "events", "k")])
    with outbox_with({"events": kafka_transport(kafka_bootstrap)}):
        relay = Relay(transport_name="events")
        relay.start()
        try:
            drive(
                relay,
                lambda: Published.objects.filter(retry__gte=1).exists(),
                what="the row rescheduled",
            )
        finally:
            relay.stop()
    row = Published.objects.get()
    assert row.status == StatusChoice.SCHEDULE and row.sent_at is None
    assert f"Kafka topic {missing!r} does not exist" in row.last_error


def test_a_refused_row_holds_back_the_rows_of_its_key(kafka_bootstrap) -> None:
    """The first row of key ``k`` goes to a topic that does not exist yet: the row after it
    (same key, a topic that exists) waits until the first is sent, then follows it."""
    missing = f"outbox-later-{uuid.uuid4().hex[:8]}"
    existing = new_topic(kafka_bootstrap, partitions=1)
    insert_outbox_rows(
        "default",
        [
            NewRow(missing, None, {"n": 1}, "events", "k"),
            NewRow(existing, None, {"n": 2}, "events", "k"),
            NewRow(existing, None, {"n": 3}, "events", "other"),
        ],
    )
    first = Published.objects.get(destination=missing)
    with outbox_with({"events": kafka_transport(kafka_bootstrap)}):
        relay = Relay(transport_name="events")
        relay.start()
        try:
            drive(
                relay,
                lambda: Published.objects.get(id=first.id).retry >= 2 and sent("events") == 1,
                what="the first row refused twice, the unrelated key sent",
            )
            assert Published.objects.get(key="k", destination=existing).sent_at is None
            admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
            for future in admin.create_topics([NewTopic(missing, 1)]).values():
                future.result(10)
            drive(relay, lambda: sent("events") == 3, what="every row sent")
        finally:
            relay.stop()
    rows = {r.destination + str(r.body["n"]): r for r in Published.objects.all()}
    assert rows[f"{missing}1"].sent_at <= rows[f"{existing}2"].sent_at
    assert [json.loads(r.value())["n"] for r in read_topic(kafka_bootstrap, existing, 2)] == [3, 2]
