"""Outbox: a decorated model's save writes an outbox row; the relay sends it with a broker
receipt; an idempotent subscriber stores it once, even when it arrives twice."""

from __future__ import annotations

import uuid

from django.db import transaction

from django_messaging.outbox.consumers import Consumer
from django_messaging.outbox.models import Published, Received
from django_messaging.outbox.payloads import Payload
from django_messaging.outbox.relay import Relay
from tests.project.demo.context import DemoContext

TITLE = "outbox: @publish → Published row → relay (receipts) → idempotent subscriber"


def run(ctx: DemoContext) -> None:
    from tests.project.outbox_app.models import PLAIN, Order, PlainModel

    seen: list[Payload] = []

    def callback(payload: Payload) -> None:
        seen.append(payload)
        with transaction.atomic():
            Order.objects.create(number=f"demo-{payload.body['id']}")
            payload.save()

    queue = f"demo-outbox-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(callback, PLAIN, queue)
    consumer.start()
    ctx.say(f"subscriber on {PLAIN}, queue {queue} (dead letters: DLQ.{queue})")
    relay = Relay()
    relay.start()
    try:
        with transaction.atomic():
            obj = PlainModel.objects.create(field_one="Field One", field_two="Field Two")
        row = Published.objects.get(body__id=obj.id, destination=PLAIN)
        ctx.say(f"saved PlainModel #{obj.id}; outbox row {row.id} body={row.body}")
        ctx.wait_for(lambda: (relay.run_once(), relay.sent >= 1)[1], what="the relay")
        row.refresh_from_db()
        ctx.say(f"relay: row {row.get_status_display()} at {row.sent_at:%H:%M:%S.%f}")
        ctx.wait_for(lambda: (consumer.run_once(), seen)[1], what="the subscriber")
        ctx.say(f"subscriber got body={seen[0].body} dop-msg-id={seen[0].headers['dop-msg-id']}")
        # the relay crashed after the broker's receipt but before marking the row: it goes again
        relay.send_rows([Published.objects.get(id=row.id)])
        ctx.wait_for(lambda: (consumer.run_once(), consumer.handled >= 2)[1], what="redelivery")
        orders = Order.objects.filter(number=f"demo-{obj.id}").count()
        received = Received.objects.filter(msg_id=str(row.id)).count()
        ctx.say(
            f"same message delivered twice: callback ran {len(seen)}x, orders={orders}, "
            f"Received rows={received}"
        )
        if (len(seen), orders, received) != (1, 1, 1):
            raise RuntimeError("the duplicate delivery was processed twice")
    finally:
        relay.stop()
        consumer.stop()
