"""One ``with suppress():`` silences every outgoing message of the process: Kafka producers,
the outbox ``@publish`` hook and CQRS master signals, each against its real service."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from django_messaging.core import suppress
from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.publishing import wait_for_confirms
from django_messaging.cqrs.transport import RabbitMQTransport
from django_messaging.kafka import kafka
from django_messaging.kafka.topic import Topic
from django_messaging.outbox.models import Published
from tests.project.cqrs_app.models import Product
from tests.project.outbox_app.models import PlainModel

pytestmark = pytest.mark.django_db(transaction=True)


def kafka_values(bootstrap: str, topic: str, expected: int, timeout: float = 10.0) -> list[bytes]:
    """Every value of the topic once ``expected`` of them arrived (or the deadline passed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            values += [m.value() for m in consumer.consume(100, 0.2) if m.error() is None]
        return values
    finally:
        consumer.close()


@pytest.fixture
def cqrs_queue(settings: Any, rabbitmq_url: str, unique_name: Any) -> Iterator[Any]:
    """A private CQRS exchange with a queue bound to every routing key; yields a getter."""
    messaging = copy.deepcopy(settings.MESSAGING)
    exchange, queue = unique_name("x"), unique_name("q")
    messaging["CQRS"].update(
        url=rabbitmq_url,
        exchange=exchange,
        transport="django_messaging.cqrs.transport.RabbitMQTransport",
    )
    settings.MESSAGING = messaging
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = conn.channel()
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.queue_declare(queue, exclusive=True)
    channel.queue_bind(queue, exchange, routing_key="#")

    def bodies() -> list[bytes]:
        found = []
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            found.append(message[2])
        return found

    yield bodies
    # Settle the publisher confirms while this test's database still exists.
    wait_for_confirms()
    producer.delete_confirmed(force=True)
    RabbitMQTransport.clean_connection()
    channel.exchange_delete(exchange)
    conn.close()


def test_one_suppress_silences_kafka_outbox_and_cqrs(
    kafka_bootstrap: str, cqrs_queue: Any, unique_name: Any
) -> None:
    topic_name = unique_name("suppressed")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic_name, 1)])[topic_name].result(10)

    class Events(Topic):
        name = topic_name

    kafka.reset_clients()
    with suppress():
        Events().produce("hidden")
        PlainModel.objects.create(field_one="hidden", field_two="hidden")
        Product.objects.create(name="hidden")
    Events().produce("shown")
    PlainModel.objects.create(field_one="shown", field_two="shown")
    Product.objects.create(name="shown")
    kafka.producer.flush(10)

    assert kafka_values(kafka_bootstrap, topic_name, expected=1) == [b"shown"]
    assert [row.body["field_one"] for row in Published.objects.all()] == ["shown"]
    deadline = time.monotonic() + 10
    published: list[bytes] = []
    while not published and time.monotonic() < deadline:
        published = cqrs_queue()
        time.sleep(0.05)
    published += cqrs_queue()
    assert len(published) == 1 and b'"name":"shown"' in published[0].replace(b" ", b"")
