"""OpenTelemetry: a produce and the consume of that message are one trace, with messaging
attributes, over a real broker."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from django_messaging.kafka import kafka
from django_messaging.kafka.topic import Topic
from tests.kafka.conftest import make_consumer, make_topic, produce_raw, run_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_consumer_continues_the_producers_trace(spans, create_topic, group) -> None:
    name = create_topic()
    seen: list[Any] = []

    def consume(self: Any, msg: Any) -> None:
        seen.append(msg)
        if b"boom" in msg.value():
            raise ValueError("boom")

    topic = make_topic(Topic, name, consume=consume, atomic=False)
    with spans.tracer.start_as_current_span("request") as request:
        topic().produce("hello")
        topic().produce("boom")
    kafka.producer.flush(10)
    consumer = make_consumer(group, topic(), join=False)()
    run_until(consumer, lambda: len(seen) == 2, what="both messages consumed")

    finished = spans.get_finished_spans()
    sends = [s for s in finished if s.name == f"send {name}"]
    processes = [s for s in finished if s.name == f"process {name}"]
    assert len(sends) == len(processes) == 2
    trace_id = request.get_span_context().trace_id
    for send, process in zip(sends, processes, strict=True):
        assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
        assert send.parent.span_id == request.get_span_context().span_id
        # The context travelled in the message's headers.
        assert process.parent.span_id == send.context.span_id
        assert process.context.trace_id == send.context.trace_id == trace_id
        assert send.attributes["messaging.system"] == "kafka"
        assert send.attributes["messaging.destination.name"] == name
        assert send.attributes["messaging.operation.type"] == "send"
        assert process.attributes["messaging.operation.type"] == "process"
        assert process.attributes["messaging.consumer.group.name"] == group
        assert process.attributes["messaging.destination.partition.id"] == "0"
    assert [p.attributes["messaging.kafka.offset"] for p in processes] == [0, 1]
    assert processes[0].status.status_code is StatusCode.UNSET
    assert processes[1].status.status_code is StatusCode.ERROR  # the handler raised
    headers = dict(seen[0].headers())
    assert headers["traceparent"].decode().split("-")[1] == f"{trace_id:032x}"


def test_no_trace_headers_while_tracing_is_off(create_topic, read) -> None:
    name = create_topic()
    make_topic(Topic, name)().produce("plain")
    kafka.producer.flush(10)
    (msg,) = read(name, 1)
    assert msg.headers() is None


def test_sampled_out_and_untraced_messages_get_no_span(
    spans, create_topic, group, kafka_bootstrap
) -> None:
    """The sender's sampling decision holds: a message of a sampled-out trace is handled in that
    (unsampled) trace, without a span; one without trace context starts no trace."""
    from opentelemetry import trace

    name = create_topic()
    unsampled = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=trace.TraceFlags(0),
    )
    traceparent = f"00-{unsampled.trace_id:032x}-{unsampled.span_id:016x}-00"
    produce_raw(kafka_bootstrap, name, [b"sampled-out"], headers=[("traceparent", traceparent)])
    produce_raw(kafka_bootstrap, name, [b"untraced"])
    seen: dict[bytes, Any] = {}

    def consume(self: Any, msg: Any) -> None:
        seen[msg.value()] = trace.get_current_span().get_span_context()

    topic = make_topic(Topic, name, consume=consume, atomic=False)
    consumer = make_consumer(group, topic(), join=False)()
    run_until(consumer, lambda: len(seen) == 2, what="both messages consumed")

    assert not [s for s in spans.get_finished_spans() if s.name == f"process {name}"]
    assert seen[b"sampled-out"].trace_id == unsampled.trace_id
    assert not seen[b"sampled-out"].trace_flags.sampled
    assert not seen[b"untraced"].is_valid
