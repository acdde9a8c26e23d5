"""The core Kafka and AMQP transports against the real brokers (Tansu, RabbitMQ): what is sent
arrives byte for byte, confirmation is the broker's, and what the broker does not take
(a missing topic, an unroutable message, a missing exchange) is rejected with a clear error."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pika
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from django_messaging.core.transports import Confirmations, OutgoingMessage, Transport
from django_messaging.core.transports.amqp import AmqpTransport
from django_messaging.core.transports.kafka import KafkaTransport
from tests.helpers import read_topic

pytestmark = pytest.mark.timeout(60)


def collect(transport: Transport, want: int, timeout: float = 15.0) -> Confirmations:
    """Poll until ``want`` messages were confirmed or rejected (or the connection was lost)."""
    total = Confirmations()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        polled = transport.poll(0.2)
        total.confirmed += polled.confirmed
        total.rejected += polled.rejected
        total.error = total.error or polled.error
        if polled.lost:
            total.lost = True
            break
        if len(total.confirmed) + len(total.rejected) >= want:
            break
    return total


@pytest.fixture
def kafka_transport(kafka_bootstrap: str) -> Iterator[Callable[..., KafkaTransport]]:
    made: list[KafkaTransport] = []

    def make(**kwargs: object) -> KafkaTransport:
        transport = KafkaTransport({"bootstrap.servers": kafka_bootstrap}, **kwargs)  # type: ignore[arg-type]
        transport.open()
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def new_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"xb-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions)]).values():
        future.result(10)
    return name


def test_kafka_key_value_and_headers_arrive_exactly(kafka_bootstrap, kafka_transport) -> None:
    topic = new_topic(kafka_bootstrap)
    transport = kafka_transport()
    assert transport.config["enable.idempotence"] is True
    raw_headers = [("h", b"\x00\xff"), ("h", b"again"), ("none", None)]
    messages = [
        OutgoingMessage(1, topic, b"\x01\x02", raw_key=b"\xfe\x00k", raw_headers=raw_headers),
        OutgoingMessage(2, topic, b"text", {"x-a": "1"}, ordering_key="order-7"),
        OutgoingMessage(3, topic, b"", {}),
        OutgoingMessage(4, topic, b"t", raw_headers=(("h", b"tuple"),)),
    ]
    assert transport.send(messages) == []
    polled = collect(transport, 4)
    assert sorted(polled.confirmed) == [1, 2, 3, 4] and not polled.rejected
    records = read_topic(kafka_bootstrap, topic, 4)
    assert [(m.key(), m.value(), m.headers()) for m in records] == [
        (b"\xfe\x00k", b"\x01\x02", raw_headers),
        (b"order-7", b"text", [("x-a", b"1")]),
        (None, b"", None),
        (None, b"t", [("h", b"tuple")]),
    ]


def test_kafka_missing_topic_is_rejected_with_its_name(kafka_transport) -> None:
    transport = kafka_transport()
    missing = f"xb-missing-{uuid.uuid4().hex[:8]}"
    transport.send([OutgoingMessage("a", missing, b"x")])
    polled = collect(transport, 1)
    assert polled.rejected == ["a"] and not polled.confirmed and not polled.lost
    assert f"Kafka topic {missing!r} does not exist" in str(polled.error)
    assert transport.is_open()


def test_kafka_send_rejects_refused_records_alone(kafka_bootstrap) -> None:
    """A page with a record to a missing topic and one the client refuses (too large): those
    two are rejected with their reasons, the others confirmed and written in order."""
    topic = new_topic(kafka_bootstrap)
    missing = f"xb-missing-{uuid.uuid4().hex[:8]}"
    transport = KafkaTransport({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 2000})
    transport.open()
    try:
        headers = [("dop-msg-id", b"id")]
        messages = [
            OutgoingMessage(1, topic, b"one", raw_key=b"k", raw_headers=headers),
            OutgoingMessage(2, missing, b"lost", raw_key=b"k", raw_headers=headers),
            OutgoingMessage(3, topic, b"x" * 5000, raw_key=b"k", raw_headers=headers),
            OutgoingMessage(4, topic, b"four", {"x-a": "1"}, ordering_key="k"),
        ]
        assert transport.send(messages) == []
        polled = collect(transport, 4)
        assert sorted(polled.confirmed) == [1, 4] and sorted(polled.rejected) == [2, 3]
        assert f"Kafka topic {missing!r} does not exist" in str(polled.error)
        assert "(and 1 more)" in str(polled.error) and transport.is_open()
    finally:
        transport.close()
    records = read_topic(kafka_bootstrap, topic, 2)
    assert [(m.key(), m.value(), m.headers()) for m in records] == [
        (b"k", b"one", headers),
        (b"k", b"four", [("x-a", b"1")]),
    ]
    closed = KafkaTransport({"bootstrap.servers": kafka_bootstrap})
    assert closed.send(messages) == [1, 2, 3, 4]  # not open: nothing sent


def test_kafka_missing_topic_is_created_when_asked(kafka_bootstrap, kafka_transport) -> None:
    transport = kafka_transport(create_topics=True, topic_partitions=2)
    name = f"xb-created-{uuid.uuid4().hex[:8]}"
    transport.send([OutgoingMessage("a", name, b"x", ordering_key="k")])
    assert collect(transport, 1).confirmed == ["a"]
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert len(admin.list_topics(name, timeout=10).topics[name].partitions) == 2
    assert [m.value() for m in read_topic(kafka_bootstrap, name, 1)] == [b"x"]


def test_kafka_unreachable_broker_fails_to_open() -> None:
    transport = KafkaTransport({"bootstrap.servers": "127.0.0.1:1"}, timeout=1.0)
    with pytest.raises(Exception, match="cannot reach Kafka"):
        transport.open()
    assert not transport.is_open()


@pytest.fixture
def amqp(
    rabbitmq_url: str,
) -> Iterator[tuple[pika.adapters.blocking_connection.BlockingChannel, str]]:
    """A channel of the test's own and a fresh exchange name (auto-deleted with its queues)."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    exchange = f"xb-{uuid.uuid4().hex[:10]}"
    channel.exchange_declare(exchange, "direct", auto_delete=True)
    yield channel, exchange
    channel.exchange_delete(exchange)
    connection.close()


def bind_queue(channel, exchange: str, routing_key: str) -> str:  # type: ignore[no-untyped-def]
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, routing_key)
    return str(queue)


def read_queue(channel, queue: str, count: int, timeout: float = 10.0) -> list:  # type: ignore[no-untyped-def]
    found = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        found.append((method.routing_key, properties, body))
    return found


def test_amqp_exchange_routing_key_persistent_confirmed(rabbitmq_url, amqp) -> None:
    channel, exchange = amqp
    queue = bind_queue(channel, exchange, "orders")
    transport = AmqpTransport(rabbitmq_url, exchange=exchange)
    transport.open()
    try:
        messages = [
            OutgoingMessage(f"id-{i}", "orders", f"body {i}".encode(), {"h": str(i)}, "text/plain")
            for i in range(50)
        ]
        assert transport.send(messages) == []
        polled = collect(transport, 50)
        assert sorted(polled.confirmed) == sorted(m.key for m in messages) and not polled.rejected
    finally:
        transport.close()
    got = read_queue(channel, queue, 50)
    assert [body for _, _, body in got] == [m.body for m in messages]
    routing_key, properties, _ = got[7]
    assert routing_key == "orders"
    assert properties.delivery_mode == 2
    assert properties.headers == {"h": "7"}
    assert properties.content_type == "text/plain"
    assert properties.message_id == "id-7"


def test_amqp_unroutable_message_is_rejected_not_confirmed(rabbitmq_url, amqp) -> None:
    channel, exchange = amqp
    queue = bind_queue(channel, exchange, "bound")
    transport = AmqpTransport(rabbitmq_url, exchange=exchange)
    transport.open()
    try:
        transport.send(
            [
                OutgoingMessage("ok-1", "bound", b"1"),
                OutgoingMessage("lost", "nobody-listens", b"2"),
                OutgoingMessage("ok-2", "bound", b"3"),
            ]
        )
        polled = collect(transport, 3)
        assert sorted(polled.confirmed) == ["ok-1", "ok-2"]
        assert polled.rejected == ["lost"] and not polled.lost
        assert "unroutable" in str(polled.error) and "'nobody-listens'" in str(polled.error)
        assert transport.is_open()
    finally:
        transport.close()
    assert [body for _, _, body in read_queue(channel, queue, 2)] == [b"1", b"3"]


def test_amqp_missing_exchange_rejects_what_was_sent(rabbitmq_url) -> None:
    transport = AmqpTransport(rabbitmq_url, exchange=f"xb-none-{uuid.uuid4().hex[:8]}")
    transport.open()
    try:
        transport.send([OutgoingMessage("a", "k", b"x")])
        polled = collect(transport, 1)
        assert polled.lost and polled.rejected == ["a"]
        assert "NOT_FOUND" in str(polled.error) or "404" in str(polled.error)
        assert not transport.is_open()
    finally:
        transport.close()
