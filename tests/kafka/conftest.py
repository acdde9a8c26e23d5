"""Helpers of the kafka tests: topics created with the admin client, readers that assign
partitions directly (no group join), and a loop that runs a consumer until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from django_messaging.kafka import kafka
from django_messaging.kafka.consumer import Consumer, Topics
from tests.helpers import read_topic
from tests.services import FAST_GROUP_CONFIG


@pytest.fixture(autouse=True)
def _fresh_clients(kafka_bootstrap: str) -> Iterator[None]:
    kafka.reset_clients()
    yield
    kafka.reset_clients()


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``ModelSync`` classes a test defines are unregistered after it; the consumers and
    connectors they registered go too."""
    monkeypatch.setattr(kafka.consumers, "_classes", dict(kafka.consumers._classes))
    monkeypatch.setattr(kafka.connectors, "_classes", dict(kafka.connectors._classes))
    before = set(kafka.model_syncs)
    yield
    for key in set(kafka.model_syncs) - before:
        kafka.model_syncs.unregister(key)
    kafka.model_syncs.clear_topics()


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def create_topic(admin: AdminClient, unique_name: Callable[[str], str]) -> Callable[..., str]:
    def create(name: str | None = None, partitions: int = 1) -> str:
        name = name or unique_name("t")
        for future in admin.create_topics([NewTopic(name, partitions)]).values():
            future.result(10)
        return name

    return create


@pytest.fixture
def group(unique_name: Callable[[str], str]) -> str:
    return unique_name("g")


@pytest.fixture
def read(kafka_bootstrap: str) -> Callable[..., list[Message]]:
    def reader(topic: str, count: int, timeout: float = 15.0) -> list[Message]:
        return read_topic(kafka_bootstrap, topic, count, timeout)

    return reader


def _assign_start(self: Consumer) -> None:
    """``start()`` without a group join: assign every partition of the (plain) topic names at
    the group's committed offsets. Regex subscriptions (and retry consumers) still join."""
    names = self.topics.names
    if any(name.startswith("^") for name in names):
        Consumer.start(self)
        return
    partitions = []
    for name in names:
        meta = self._consumer.list_topics(name, timeout=10)
        partitions += [TopicPartition(name, p) for p in sorted(meta.topics[name].partitions)]
    self._consumer.assign(partitions)


def make_consumer(
    group_id: str,
    *topics: Any,
    config: dict[str, Any] | None = None,
    join: bool = False,
    **attrs: Any,
) -> type[Consumer]:
    """A consumer class of ``topics`` in ``group_id``. Unless ``join``, it assigns itself its
    topics' partitions (~20 ms) instead of joining the group (~1 s on the test broker); offsets
    are stored and committed for the group either way. Use ``join=True`` where group
    membership (subscribe, rebalances) is under test."""
    if not join:
        attrs.setdefault("start", _assign_start)
    return type(
        "TestConsumer",
        (Consumer,),
        {
            "topics": Topics(*topics),
            "config": {"group.id": group_id, "auto.offset.reset": "earliest", **(config or {})},
            "polling_freq": 0.2,
            "__module__": __name__,
            **attrs,
        },
    )


def run_until(
    consumer: Consumer, condition: Callable[[], Any], timeout: float = 20.0, what: str = ""
) -> Any:
    """Start ``consumer``, run batches until ``condition()`` is truthy, stop it."""
    consumer.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            consumer.run_once()
            value = condition()
            if value:
                return value
        pytest.fail(
            f"timed out after {timeout}s waiting for {what or condition}; last: {condition()!r}"
        )
    finally:
        consumer.stop()


def produce_raw(bootstrap: str, topic: str, values: list[Any], key: Any = None, **kw: Any) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for value in values:
        producer.produce(topic, value, key=key, **kw)
    assert producer.flush(10) == 0


FAST = FAST_GROUP_CONFIG


def make_topic(base: type, name: str, **attrs: Any) -> type:
    """A topic class with a run-time name (``name`` is abstract on the base classes)."""
    return type(
        f"Topic_{name.replace('-', '_').replace('.', '_')}"[:60], (base,), {"name": name, **attrs}
    )


def run_many(consumers: list[Consumer], condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Like :func:`run_until` for several consumers taking turns in this thread."""
    for consumer in consumers:
        consumer.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for consumer in consumers:
                consumer.run_once()
            value = condition()
            if value:
                return value
        pytest.fail(f"timed out after {timeout}s; last: {condition()!r}")
    finally:
        for consumer in consumers:
            consumer.stop()


def headers_of(msg: Message) -> dict[str, bytes]:
    return dict(msg.headers() or [])


def committed(bootstrap: str, group_id: str, topic: str, partitions: int = 1) -> list[int]:
    """The group's committed offsets of ``topic`` (-1001: none)."""
    consumer = RawConsumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


def committed_total(bootstrap: str, group_id: str, topic: str, partitions: int) -> int:
    """The messages of ``topic`` the group committed, over its partitions: one the producer gave
    no message has no committed offset (-1001), which counts as none."""
    return sum(max(offset, 0) for offset in committed(bootstrap, group_id, topic, partitions))
