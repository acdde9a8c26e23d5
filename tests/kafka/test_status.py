"""``messaging_status`` on Kafka: consumer-group lag per partition against a real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import Producer as RawProducer
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_messaging.kafka import kafka
from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.topic import TopicConsumer
from tests.services import FAST_GROUP_CONFIG


class _Topic(TopicConsumer):
    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def consume(self, msg: Any) -> None:
        pass


@pytest.fixture
def registered(create_topic: Callable[..., str], group: str) -> Iterator[tuple[str, str]]:
    """A consumer of a topic of its own, registered as the project's consumers are."""
    topic = create_topic(partitions=1)
    cls = type(
        f"StatusConsumer_{group.replace('-', '_')}",
        (Consumer,),
        {"topics": Topics(_Topic(topic)), "config": {"group.id": group}},
    )
    key = kafka.consumers.register(cls)
    yield topic, group
    kafka.consumers.unregister(key)


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = RawProducer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, f"m{i}".encode())
        # One record per batch: the broker's high watermark is then exact (the Tansu broker
        # reports the base offset of the last batch + 1 as "latest").
        assert producer.flush(10) == 0


def _consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> None:
    consumer = RawConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **FAST_GROUP_CONFIG,
        }
    )
    consumer.subscribe([topic])
    taken: list[Any] = []
    deadline = time.monotonic() + 20
    try:
        while len(taken) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                taken.append(msg)
        assert len(taken) == count, f"consumed {len(taken)} of {count}"
        consumer.commit(message=taken[-1], asynchronous=False)
    finally:
        consumer.close()


def _lag(out: str, group: str) -> list[dict[str, Any]]:
    return [
        f
        for f in json.loads(out)["figures"]
        if f["metric"] == "kafka_consumer_lag" and f["labels"]["group"] == group
    ]


def test_lag_is_produced_minus_committed(kafka_bootstrap: str, registered: tuple[str, str]) -> None:
    topic, group = registered
    _produce(kafka_bootstrap, topic, 7)
    out = StringIO()
    call_command("messaging_status", "--json", "--package", "kafka", stdout=out)
    # Nothing committed yet: everything from the start of the log is lag.
    assert [
        (f["labels"]["topic"], f["labels"]["partition"], f["value"])
        for f in _lag(out.getvalue(), group)
    ] == [(topic, "0", 7)]

    _consume_and_commit(kafka_bootstrap, topic, group, 3)
    out = StringIO()
    call_command("messaging_status", "--json", "--package", "kafka", "--max-lag", "4", stdout=out)
    assert [f["value"] for f in _lag(out.getvalue(), group)] == [4]

    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("messaging_status", "--package", "kafka", "--max-lag", "3", stdout=out)
    assert raised.value.returncode == 1
    assert f"group={group} topic={topic} partition=0" in out.getvalue()
    assert "EXCEEDED" in out.getvalue()
    assert f"kafka_consumer_lag (group={group} topic={topic} partition=0) = 4 > 3" in str(
        raised.value
    )


def test_unreachable_broker_exits_3(registered: tuple[str, str]) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kafka_settings = {"GLOBAL_CONFIG": {"bootstrap.servers": f"127.0.0.1:{port}"}}
    out, err = StringIO(), StringIO()
    with (
        override_settings(MESSAGING={"KAFKA": kafka_settings}),
        pytest.raises(CommandError) as raised,
    ):
        call_command(
            "messaging_status", "--package", "kafka", "--timeout", "1", stdout=out, stderr=err
        )
    assert raised.value.returncode == 3
    assert f"Kafka at 127.0.0.1:{port}" in str(raised.value)
    assert "kafka (kafka): UNREACHABLE" in out.getvalue()
