"""The outbox relayed to RabbitMQ over AMQP 0-9-1: exchange and routing key, persistent, per-key
order with two relays and a SIGKILLed one, unroutable messages kept; read back from queues."""

from __future__ import annotations

import json

import pytest

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.decorators import NewRow, insert_outbox_rows
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import Relay
from tests.outbox.brokers import (
    assert_per_key_order,
    bound_queue,
    drain,
    keyed_rows,
    kill_one_of_two_relays,
    outbox_with,
    relay_env,
    sent,
)
from tests.outbox.helpers import drive

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_amqp_per_key_order_with_two_relays_and_a_sigkill(
    rabbitmq_url, exchange, processes
) -> None:
    name, channel = exchange
    queue = bound_queue(channel, name, "orders")
    transports = {"rabbit": {"BACKEND": "amqp", "OPTIONS": {"url": rabbitmq_url, "exchange": name}}}
    keys, per_key = 4, 120
    total = keys * per_key
    keyed_rows("rabbit", "orders", keys, per_key)
    held = kill_one_of_two_relays(processes, relay_env(transports), "rabbit", total)
    messages = drain(channel, queue, total)
    assert all(properties.delivery_mode == 2 for properties, _ in messages)
    seen = [(json.loads(body)["key"], json.loads(body)["seq"]) for _, body in messages]
    assert_per_key_order(seen, total, held)


def test_amqp_unroutable_row_is_not_marked_sent(rabbitmq_url, exchange) -> None:
    name, channel = exchange
    queue = bound_queue(channel, name, "bound")
    insert_outbox_rows(
        "default",
        [NewRow("bound", None, {"n": 1}, "rabbit"), NewRow("nowhere", None, {"n": 2}, "rabbit")],
    )
    transports = {"rabbit": {"BACKEND": "amqp", "OPTIONS": {"url": rabbitmq_url, "exchange": name}}}
    with outbox_with(transports):
        relay = Relay(transport_name="rabbit")
        relay.start()
        try:
            drive(
                relay,
                lambda: sent("rabbit") == 1 and Published.objects.filter(retry__gte=1).exists(),
                what="one sent, one rescheduled",
            )
        finally:
            relay.stop()
    lost = Published.objects.get(destination="nowhere")
    assert lost.status == StatusChoice.SCHEDULE and lost.sent_at is None
    assert "unroutable" in lost.last_error and "'nowhere'" in lost.last_error
    assert [json.loads(body) for _, body in drain(channel, queue, 1)] == [{"n": 1}]
