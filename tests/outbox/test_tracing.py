"""OpenTelemetry through the outbox: the transaction that saved the model, the relay's send and
the subscriber's callback are one trace, the context stored with the row in between."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from django_messaging.outbox.consumers import Consumer
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import Relay
from tests.outbox import callbacks
from tests.outbox.helpers import drive
from tests.project.outbox_app.models import PLAIN, Order, PlainModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def test_one_trace_from_the_save_to_the_callback(spans, stomp_address, unique_name) -> None:
    subscriber = Consumer(callbacks.store_order, PLAIN, unique_name("q"))
    subscriber.start()
    relay: Any = None
    try:
        with spans.tracer.start_as_current_span("request") as request:
            obj = PlainModel.objects.create(field_one="traced", field_two="2")
        row = Published.objects.get(destination=PLAIN, body__id=obj.id)
        context = request.get_span_context()
        # The row keeps the context of the transaction that wrote it.
        assert row.headers["traceparent"] == (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
        )

        relay = Relay()
        relay.start()
        drive(relay, lambda: relay.sent >= 1, what="the row sent")
        drive(
            subscriber,
            lambda: Order.objects.filter(number=str(obj.id)).exists(),
            what="the callback to store the order",
        )
    finally:
        subscriber.stop()
        if relay is not None:
            relay.stop()

    finished = spans.get_finished_spans()
    (send,) = [
        s
        for s in finished
        if s.name == f"send {PLAIN}" and s.parent and s.parent.span_id == context.span_id
    ]
    assert send.parent.is_remote  # continued from the row's headers, in another "process"
    (process,) = [s for s in finished if s.name == f"process {subscriber.queue_name}"]
    assert send.kind is SpanKind.PRODUCER
    assert send.context.trace_id == context.trace_id
    assert send.attributes["messaging.system"] == "rabbitmq"
    assert send.attributes["messaging.message.id"] == str(row.id)
    assert process.kind is SpanKind.CONSUMER
    assert process.parent.span_id == send.context.span_id
    assert process.context.trace_id == context.trace_id
    assert process.attributes["messaging.destination.name"] == subscriber.queue_name
    assert process.attributes["messaging.operation.type"] == "process"


def test_rows_written_while_tracing_is_off_carry_no_context() -> None:
    obj = PlainModel.objects.create(field_one="plain", field_two="2")
    headers = Published.objects.get(destination=PLAIN, body__id=obj.id).headers
    assert list(headers) == ["dop-correlation-id"]
