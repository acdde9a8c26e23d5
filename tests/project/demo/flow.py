"""One flow across the packages: a saved order goes through the outbox to Kafka and into an
idempotent Kafka consumer of another Django app; an event-sourced aggregate's events go to
Kafka through the worker of ``manage.py forward_events`` and into the same consumer."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from django.db import transaction
from django.test import override_settings
from django.test.utils import isolate_apps
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from django_messaging.eventstore.conf import application_env
from django_messaging.eventstore.forwarder import EventForwarder
from django_messaging.eventstore.management.commands.forward_events import kafka_transport
from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.models import ProcessedMessage
from django_messaging.kafka.topic import TopicConsumer
from django_messaging.outbox.decorators import Config, publish
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import Relay
from tests.project.demo.context import DemoContext


class Shipment(Aggregate):
    """The order's shipment, event-sourced."""

    @event("Packed")
    def __init__(self, order_number: str, parcels: int) -> None:
        self.order_number = order_number
        self.parcels = parcels

    @event("Shipped")
    def ship(self, carrier: str) -> None:
        self.carrier = carrier


class Shipping(Application[Any]):
    pass


TITLE = "one flow: order → outbox → Kafka → idempotent consumer; events → forward_events → Kafka"

ORDERS, EVENTS = "demo-flow-orders", "demo-flow-shipping-events"
KAFKA_TRANSPORT = {"kafka": {"BACKEND": "kafka"}}


def run(ctx: DemoContext) -> None:
    from tests.project.kafka_app.models import Handled
    from tests.project.outbox_app.models import Order

    applied: list[str] = []

    class OrdersIn(TopicConsumer):  # the other app's side: kafka_app stores what it applies
        name = ORDERS
        idempotent = True

        def consume(self, msg):  # type: ignore[no-untyped-def]
            body = json.loads(msg.value())
            Handled.objects.create(topic=ORDERS, value=body["number"])
            applied.append(f"order {body['number']}")

    class ShippingEventsIn(TopicConsumer):
        name = EVENTS
        idempotent = True

        def consume(self, msg):  # type: ignore[no-untyped-def]
            event = json.loads(msg.value())
            Handled.objects.create(topic=EVENTS, value=str(event["id"]))
            applied.append(
                f"event #{event['id']} {event['type']} v{event['originator_version']} "
                f"{event['state']}"
            )

    class FlowConsumer(Consumer):
        topics = Topics(OrdersIn(), ShippingEventsIn())
        config = {"group.id": "demo-flow", "auto.offset.reset": "earliest"}
        polling_freq = 0.2

    admin = AdminClient({"bootstrap.servers": ctx.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(ORDERS, 1), NewTopic(EVENTS, 1)]).values():
        future.result(10)
    consumer = FlowConsumer()

    def consume_until(count: int, what: str) -> None:
        ctx.wait_for(lambda: (consumer.run_once(), len(applied) >= count)[1], what=what)

    # 1. A saved order → an outbox row in the same transaction → the relay → Kafka.
    with (
        override_settings(MESSAGING=_with_outbox_transports(KAFKA_TRANSPORT)),
        isolate_apps("tests.project.outbox_app"),
    ):

        @publish([Config(destination=ORDERS, transport="kafka", key="number")])
        class ShopOrder(Order):
            class Meta:
                proxy = True
                app_label = "outbox_app"

        with transaction.atomic():
            order = ShopOrder.objects.create(number="A-1001")
        row = Published.objects.get(destination=ORDERS, body__id=order.id)
        ctx.say(
            f"saved order {order.number}; outbox row {row.id} (transport 'kafka', key "
            f"{row.key!r}) written in the same transaction"
        )
        relay = Relay(transport_name="kafka")
        relay.start()
        try:
            ctx.wait_for(lambda: (relay.run_once(), relay.sent >= 1)[1], what="the relay")
            ctx.say(f"relay: sent to Kafka topic {ORDERS}, confirmed by the broker")
            consumer.start()
            consume_until(1, "the order in the consumer")
            ctx.say(f"kafka_app consumer applied: {applied[-1]} (dop-msg-id {row.id})")
            # The relay died after the broker's confirmation, before marking the row: again.
            relay.send_rows([Published.objects.get(id=row.id)])
            ctx.wait_for(lambda: (relay.run_once(), True)[1], what="the resend")
        finally:
            relay.stop()

    # 2. An event-sourced aggregate's events → the forward_events worker → Kafka.
    shipping = Shipping(env=application_env())
    shipment = Shipment(order.number, parcels=2)
    shipment.ship("DHL")
    shipping.save(shipment)
    last = shipping.recorder.max_notification_id()
    command = (
        "manage.py forward_events tests.project.demo.flow.Shipping "
        f"--kafka {EVENTS} --name demo-flow"
    )
    ctx.say(f"saved the shipment of {order.number} (Packed, Shipped): Shipping log up to #{last}")
    ctx.say(f"forwarding with the worker of: {command}")
    forwarder = EventForwarder(
        shipping,
        partial(kafka_transport, ctx.kafka_bootstrap, False),
        EVENTS,
        name="demo-flow",
        poll_interval=0.05,
    )
    forwarder.start()
    try:
        ctx.wait_for(lambda: (forwarder.run_once(), forwarder.position == last)[1], what="forward")
    finally:
        forwarder.stop()
    ctx.say(f"forwarded #1-#{last} to {EVENTS}; position {forwarder.position} recorded")
    consume_until(1 + last, "the forwarded events in the consumer")
    # One more redelivery check: the consumer skips the order it applied already.
    consumer.run_once()
    consumer.stop()
    for line in applied[1:]:
        ctx.say(f"kafka_app consumer applied: {line}")
    orders = Handled.objects.filter(topic=ORDERS, value="A-1001").count()
    events = Handled.objects.filter(topic=EVENTS).count()
    skipped = ProcessedMessage.objects.filter(consumer="demo-flow").count()
    ctx.say(
        f"order delivered twice, applied {orders}x; {events} events applied once each; "
        f"{skipped} message ids in the consumer's inbox"
    )
    if orders != 1 or events != last:
        raise RuntimeError("the flow applied a message twice or lost one")


def _with_outbox_transports(transports: dict) -> dict:
    from django.conf import settings

    messaging = dict(settings.MESSAGING)
    messaging["OUTBOX"] = {**messaging.get("OUTBOX", {}), "TRANSPORTS": transports}
    return messaging
