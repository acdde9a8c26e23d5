"""``django_messaging.kafka.testing`` against the broker: one scenario, run through the real
broker and through ``KafkaBroker`` in memory, gives the same observable result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import TestCase

from django_messaging.core import suppress
from django_messaging.kafka import kafka
from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.testing import KafkaBroker
from django_messaging.kafka.topic import Topic
from tests.helpers import readme_section
from tests.kafka.conftest import make_consumer, read_topic, run_many

pytestmark = pytest.mark.django_db

#: What the scenario's provenance headers are compared on (offsets and timestamps differ).
COMPARED = ("ORIGINAL_TOPIC", "ORIGINAL_PARTITION", "RETRY_ATTEMPT", "DEAD_LETTER_MESSAGE")


class Boom(Exception):
    pass


def scenario(topic_name: str, seen: list[str]) -> tuple[type[Topic], type[Topic]]:
    """Orders (json) with blocking retries; each handled order produces a receipt."""

    class Receipts(Topic):
        name = f"{topic_name}-receipts"
        value_serializer = "json"
        value_deserializer = "json"

    @kafka.retry(max_retries=1, delay=0.05)
    class Orders(Topic):
        name = topic_name
        value_serializer = "json"
        value_deserializer = "json"
        atomic = False

        def consume(self, msg: Any) -> None:
            order = self.deserialize(msg.value(), "value")
            seen.append(order["n"])
            if order["n"] == "poison" or (order["n"] == "flaky" and seen.count("flaky") == 1):
                raise Boom(f"cannot handle {order['n']}")
            Receipts().produce({"order": order["n"]}, key=msg.key().decode(), headers={"h": "1"})

    return Orders, Receipts


def produce_orders(orders: type[Topic]) -> None:
    for n in ("a", "flaky", "poison", "b"):
        orders().produce({"n": n}, key=f"k-{n}")
    with suppress([orders.name]):
        orders().produce({"n": "suppressed"}, key="k-s")


def summary(receipts: list[Any], dead: list[Any], seen: list[str]) -> dict[str, Any]:
    return {
        "seen": seen,
        "receipts": [(r.key(), r.value(), r.headers()) for r in receipts],
        "dead": [
            (d.key(), d.value(), {k: v for k, v in (d.headers() or []) if k in COMPARED})
            for d in dead
        ],
    }


def test_same_result_in_memory_and_through_the_broker(
    create_topic: Callable[..., str], group: str, kafka_bootstrap: str
) -> None:
    # Through the broker.
    name = create_topic()
    create_topic(f"{name}-receipts")
    seen: list[str] = []
    orders, receipts = scenario(name, seen)
    produce_orders(orders)
    kafka.producer.flush(10)
    consumer = make_consumer(group, orders())()
    run_many([consumer], lambda: "b" in seen)
    real = summary(
        read_topic(kafka_bootstrap, receipts.name, 3),
        read_topic(kafka_bootstrap, f"{group}.{name}.dlt", 1),
        seen,
    )

    # In memory, same names.
    seen_memory: list[str] = []
    orders, receipts = scenario(name, seen_memory)
    with KafkaBroker(topics=[receipts, orders]) as broker:
        produce_orders(orders)
        handed = broker.consume(make_consumer(group, orders()))
        memory = summary(
            [_Consumed(m) for m in broker.produced.to(receipts.name)],
            [_Consumed(m) for m in broker.produced.to(f"{group}.{name}.dlt")],
            seen_memory,
        )
        assert broker.committed(group, name) == 4
        assert broker.produced.values(receipts.name) == [
            {"order": "a"},
            {"order": "flaky"},
            {"order": "b"},
        ]
        broker.produced.assert_sent(receipts.name, key="k-a", headers={"h": "1"})
        broker.produced.assert_not_sent(name, value={"n": "suppressed"})
        assert handed == 4

    assert real == memory
    assert real["seen"] == ["a", "flaky", "flaky", "poison", "poison", "b"]
    assert real["dead"][0][2]["RETRY_ATTEMPT"] == b"1"


class _Consumed:
    """A captured message with the accessors the summary reads."""

    def __init__(self, message: Any) -> None:
        self.message = message

    def key(self) -> Any:
        return self.message.key

    def value(self) -> Any:
        return self.message.body

    def headers(self) -> Any:
        return list(self.message.header_items) or None


def test_non_blocking_retries_and_the_retry_consumer_in_memory() -> None:
    seen: list[tuple[str, str]] = []

    @kafka.retry(max_retries=2, delay=0.01, blocking=False)
    class Events(Topic):
        name = "events"

        def consume(self, msg: Any) -> None:
            seen.append((msg.topic(), msg.value().decode()))
            if msg.value() == b"fails":
                raise Boom("nope")

    class EventsConsumer(Consumer):
        topics = Topics(Events())
        config = {"group.id": "svc"}
        polling_freq = 0.05

    with KafkaBroker() as broker:
        broker.produce("events", b"fails", key=b"k")
        broker.produce("events", b"fine")
        broker.consume(EventsConsumer)
        assert seen == [
            ("events", "fails"),
            ("events", "fine"),
            ("svc.events.retry.1", "fails"),
            ("svc.events.retry.2", "fails"),
        ]
        dead = broker.produced.assert_sent("svc.events.dlt", key=b"k", body=b"fails")
        assert dead.headers["RETRY_ATTEMPT"] == "2"
        assert dead.headers["ORIGINAL_TOPIC"] == "events"
        assert broker.consume(EventsConsumer) == 0  # offsets committed: nothing again


class KafkaTestCaseTests(TestCase):
    def test_a_test_case_uses_the_broker_as_a_context_manager(self) -> None:
        class Greetings(Topic):
            name = "greetings"
            value_serializer = "json"
            value_deserializer = "json"

        with KafkaBroker(topics=[Greetings]) as broker:
            Greetings().produce({"hello": "world"}, key="1")
            kafka.reset_clients()  # settings changed: the stand-in stays
            Greetings().produce({"hello": "again"})
        self.assertEqual(
            broker.produced.values("greetings"), [{"hello": "world"}, {"hello": "again"}]
        )
        self.assertIsNot(kafka.producer, broker)


def test_the_pytest_fixture(messaging_kafka: KafkaBroker) -> None:
    seen: list[bytes] = []

    class Pings(Topic):
        name = "pings"

        def consume(self, msg: Any) -> None:
            seen.append(msg.value())

    class PingConsumer(Consumer):
        topics = Topics(Pings())
        config = {"group.id": "pinger"}

    Pings().produce("ping", key="1")
    assert messaging_kafka.consume(PingConsumer) == 1
    assert seen == [b"ping"]
    assert messaging_kafka.committed("pinger", "pings") == 1


def test_the_readme_example_runs() -> None:
    example = readme_section(Path(__file__).resolve().parents[2] / "packages/kafka/README.md")
    with KafkaBroker() as broker:
        example["test_a_greeting_is_answered"](broker)
    example["GreetingTests"]("test_a_greeting_is_answered").test_a_greeting_is_answered()
