"""Test Kafka code without a broker: what topics produce is recorded, and consumers run their
real code over it, in this process.

    from django_messaging.kafka.testing import KafkaBroker

    def test_order_flow(db):
        with KafkaBroker() as broker:
            OrderTopic().produce({"id": 1}, key="1")          # recorded, not sent
            broker.produced.assert_sent("orders", key="1", value={"id": 1})
            broker.consume(OrderConsumer)                    # runs OrderTopic.consume
        assert Order.objects.filter(id=1).exists()

Inside the block the process's shared clients (:mod:`django_messaging.kafka.clients`) are
in-memory stand-ins: the producer every topic uses (suppression, serializers and settings are
the real ones), the admin client that creates retry and dead letter topics, and the client a
:class:`~django_messaging.kafka.consumer.Consumer` reads with. :meth:`KafkaBroker.consume`
runs a consumer class's own loop (``run_once``) until every message was handled: batches,
``atomic`` transactions, blocking retries (their delays are waited, as in production: give
tests short ones), retry topics and their generated ``<Consumer>Retry`` consumer, dead letter
topics with their provenance headers, offsets committed per group.

A keyed message goes to partition ``crc32(key) % partitions`` (Kafka uses murmur2: the same
key always lands on the same partition, which is what ordering needs, but not on the same one).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition

from django_messaging.core.headers import as_bytes
from django_messaging.kafka import kafka
from django_messaging.kafka.clients import shared
from django_messaging.kafka.consumer.consumer import Consumer
from django_messaging.kafka.producer import Producer
from django_messaging.kafka.retry.consumer import RetryConsumer
from django_messaging.kafka.topic import TopicConsumer
from django_messaging.testing import MessageLog, SentMessage

__all__ = ["KafkaBroker", "MemoryMessage"]


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    timestamp: int


class MemoryMessage:
    """A consumed message with the accessors of ``confluent_kafka.Message``."""

    def __init__(self, record: _Record) -> None:
        self._record = record
        self._key = record.key
        self._value = record.value
        self._headers = list(record.headers) if record.headers is not None else None

    def topic(self) -> str:
        return self._record.topic

    def partition(self) -> int:
        return self._record.partition

    def offset(self) -> int:
        return self._record.offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self._record.timestamp

    def error(self) -> None:
        return None

    def latency(self) -> None:
        return None

    def leader_epoch(self) -> None:
        return None

    def set_headers(self, headers: list[tuple[str, bytes]] | None) -> None:
        self._headers = headers

    def set_key(self, key: bytes | None) -> None:
        self._key = key

    def set_value(self, value: bytes | None) -> None:
        self._value = value

    def __len__(self) -> int:
        return len(self._value or b"")

    def __repr__(self) -> str:
        return f"<MemoryMessage {self.topic()}[{self.partition()}]@{self.offset()}>"


def _bytes(value: Any) -> bytes | None:
    return as_bytes(value) if value is not None else None


def _headers(headers: Any) -> list[tuple[str, bytes]] | None:
    if headers is None:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), as_bytes(v) or b"") for k, v in items]


class _ProducerClient:
    """The ``confluent_kafka.Producer`` calls the package makes, answered in memory. Delivery
    reports are served by ``poll``/``flush``, as librdkafka does."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self._reports: list[tuple[Callable[..., Any], _Record]] = []

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        on_delivery: Callable[..., Any] | None = None,
        callback: Callable[..., Any] | None = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        record = self.broker._append(topic, value, key, headers, partition, timestamp)
        report = on_delivery or callback
        if report is not None:
            self._reports.append((report, record))

    def poll(self, timeout: float | None = None) -> int:
        reports, self._reports = self._reports, []
        for report, record in reports:
            report(None, MemoryMessage(record))
        return len(reports)

    def flush(self, timeout: float | None = None) -> int:
        self.poll(0)
        return 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self.broker._metadata(topic)

    def __len__(self) -> int:
        return len(self._reports)


class _MemoryProducer(Producer):
    """The package's :class:`~django_messaging.kafka.producer.Producer` (suppression and all)
    over :class:`_ProducerClient`."""

    def __init__(self, broker: KafkaBroker) -> None:  # no librdkafka client
        self.config = {"client.id": "memory"}
        self._producer = _ProducerClient(broker)  # type: ignore[assignment]
        self._unpolled = 0


class _Admin:
    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker

    def create_topics(self, new_topics: Iterable[Any], **kwargs: Any) -> dict[str, Future[None]]:
        futures: dict[str, Future[None]] = {}
        for new in new_topics:
            self.broker.create_topic(new.topic, max(1, int(new.num_partitions)))
            future: Future[None] = Future()
            future.set_result(None)
            futures[new.topic] = future
        return futures

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self.broker._metadata(topic)


class _ConsumerClient:
    """A ``confluent_kafka.Consumer`` of one group over the broker's logs."""

    def __init__(self, broker: KafkaBroker, config: dict[str, Any]) -> None:
        self.broker = broker
        self.group = str(config.get("group.id", ""))
        self.auto_commit = bool(config.get("enable.auto.commit", True))
        self.subscription: list[str] = []
        self.on_assign: Callable[..., Any] | None = None
        self.assigned: set[tuple[str, int]] = set()
        self.positions: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.stored: dict[tuple[str, int], int] = {}
        self.closed = False

    # subscription
    def subscribe(self, topics: list[str], on_assign: Any = None, **kwargs: Any) -> None:
        self.subscription = list(topics)
        self.on_assign = on_assign
        self.assigned.clear()

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read these partitions from the group's committed offsets (no subscription)."""
        self.subscription = []
        for p in partitions:
            tp = (p.topic, p.partition)
            self.broker.create_topic(p.topic, p.partition + 1)
            self.assigned.add(tp)
            self.positions[tp] = self.broker._committed.get((self.group, p.topic, p.partition), 0)

    def _matches(self, name: str) -> bool:
        import re

        return any(
            re.search(t, name) if t.startswith("^") else t == name for t in self.subscription
        )

    def _refresh(self) -> None:
        new = []
        for name, partitions in self.broker._logs.items():
            if not self._matches(name):
                continue
            for number in range(len(partitions)):
                tp = (name, number)
                if tp not in self.assigned:
                    self.assigned.add(tp)
                    self.positions[tp] = self.broker._committed.get((self.group, name, number), 0)
                    new.append(TopicPartition(name, number))
        if new and self.on_assign is not None:
            self.on_assign(self, new)

    def _available(self) -> list[tuple[str, int]]:
        return [
            tp
            for tp in sorted(self.assigned)
            if tp not in self.paused and self.positions[tp] < len(self.broker._logs[tp[0]][tp[1]])
        ]

    def idle(self) -> bool:
        """Nothing left to hand out and nothing held by a pause."""
        self._refresh()
        return not self.paused and not self._available()

    # reading
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[MemoryMessage]:
        self._refresh()
        out: list[MemoryMessage] = []
        for tp in self._available():
            log = self.broker._logs[tp[0]][tp[1]]
            while self.positions[tp] < len(log) and len(out) < num_messages:
                out.append(MemoryMessage(log[self.positions[tp]]))
                self.positions[tp] += 1
        if not out and self.paused and timeout and timeout > 0:
            time.sleep(min(timeout, 0.05))  # a pause is running out
        self.broker.handed_out += len(out)
        return out

    def poll(self, timeout: float = -1) -> MemoryMessage | None:
        found = self.consume(1, timeout)
        return found[0] if found else None

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update((p.topic, p.partition) for p in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update((p.topic, p.partition) for p in partitions)

    # offsets
    def store_offsets(self, message: Any = None, offsets: Any = None) -> None:
        if message is not None:
            self.stored[(message.topic(), message.partition())] = message.offset() + 1
        for tp in offsets or ():
            self.stored[(tp.topic, tp.partition)] = tp.offset
        if self.auto_commit:
            self.commit()

    def commit(self, *args: Any, **kwargs: Any) -> None:
        for (topic, partition), offset in self.stored.items():
            self.broker._committed[(self.group, topic, partition)] = offset
        self.stored.clear()

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[Any]:
        return [
            TopicPartition(
                p.topic,
                p.partition,
                self.broker._committed.get((self.group, p.topic, p.partition), -1001),
            )
            for p in partitions
        ]

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.assigned)]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return self.broker._metadata(topic)

    def close(self) -> None:
        self.commit()
        self.closed = True


class KafkaBroker:
    """An in-memory Kafka for tests; a context manager (see the module docstring).

    ``produced``: every message produced while it is active, in order
    (:class:`~django_messaging.testing.MessageLog`: ``assert_sent("topic", key=..., value=...,
    headers=...)``). Values are decoded with the value deserializer of the topic: one of
    ``topics`` (classes or instances), else of a registered consumer, else a topic class with
    that ``name``; without one they stay bytes.
    """

    def __init__(self, topics: Iterable[TopicConsumer | type[TopicConsumer]] = ()) -> None:
        self.produced = MessageLog()
        self._logs: dict[str, list[list[_Record]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._topics = [t() if isinstance(t, type) else t for t in topics]
        self._previous: dict[str, Any] | None = None
        #: Messages handed to consumers so far.
        self.handed_out = 0

    def __enter__(self) -> KafkaBroker:
        self._previous = shared.pin(
            producer=_MemoryProducer(self),
            admin=_Admin(self),
            consumer=lambda config: _ConsumerClient(self, config),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        shared.unpin(self._previous)
        self._previous = None

    # --- the logs ---------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name`` (a topic is also created by its first message, with one partition)."""
        log = self._logs.setdefault(name, [])
        while len(log) < partitions:
            log.append([])

    def _append(
        self, topic: str, value: Any, key: Any, headers: Any, partition: int, timestamp: int
    ) -> _Record:
        self.create_topic(topic)
        partitions = self._logs[topic]
        if partition is None or partition < 0:
            key_bytes = _bytes(key)
            partition = zlib.crc32(key_bytes) % len(partitions) if key_bytes else 0
        log = partitions[partition]
        record = _Record(
            topic,
            partition,
            len(log),
            _bytes(key),
            _bytes(value),
            _headers(headers),
            timestamp or int(time.time() * 1000),
        )
        log.append(record)
        self.produced.record(
            SentMessage(
                topic,
                record.value,
                tuple(record.headers or ()),
                key=record.key,
                extra={"partition": record.partition, "offset": record.offset},
                decoder=self._decoder(topic),
            )
        )
        return record

    def _metadata(self, topic: str | None) -> Any:
        names = [topic] if topic is not None else list(self._logs)
        return SimpleNamespace(
            topics={
                name: SimpleNamespace(
                    topic=name,
                    partitions={
                        n: SimpleNamespace(id=n) for n in range(len(self._logs.get(name) or [[]]))
                    },
                    error=None,
                )
                for name in names
            }
        )

    def produce(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Any = None,
        partition: int = -1,
    ) -> SentMessage:
        """Put a hand-made message (raw bytes or text, not serialized) on ``topic``."""
        self._append(topic, value, key, headers, partition, 0)
        return self.produced[-1]

    def committed(self, group: str, topic: str, partition: int = 0) -> int | None:
        """The offset ``group`` committed on ``topic[partition]`` (the next one to read)."""
        return self._committed.get((group, topic, partition))

    # --- decoding ---------------------------------------------------------------------------

    def _decoder(self, topic: str) -> Callable[[bytes | None], Any] | None:
        found = self._topic_for(topic)
        if found is None:
            return None

        def decode(body: bytes | None) -> Any:
            from confluent_kafka.serialization import MessageField

            return found.deserialize(body, MessageField.VALUE)

        return decode

    def _topic_for(self, name: str) -> TopicConsumer | None:
        for topic in self._topics:
            if topic.matches(name):
                return topic
        for consumer_cls in _registered_consumers():
            for topic in consumer_cls.topics:
                if topic.matches(name):
                    return topic  # type: ignore[no-any-return]
        return _topic_class_named(name)

    # --- consuming --------------------------------------------------------------------------

    def consume(self, consumer: type[Consumer] | str, *, timeout: float = 30.0) -> int:
        """Run ``consumer`` (a class or its registry key), and its generated retry consumer,
        until every message of their topics was handled and no retry waits; return how many
        messages they were handed. Raises ``AssertionError`` after ``timeout`` seconds."""
        cls = kafka.consumers[consumer] if isinstance(consumer, str) else consumer
        classes: list[type[Consumer]] = [cls]
        retry_cls = RetryConsumer.build(cls) if not issubclass(cls, RetryConsumer) else None
        if retry_cls is not None:
            classes.append(retry_cls)
        before = self.handed_out
        instances = [c() for c in classes]
        deadline = time.monotonic() + timeout
        try:
            for instance in instances:
                instance.start()
            while True:
                for instance in instances:
                    instance.run_once()
                if all(instance._consumer.idle() for instance in instances):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{cls.__name__} still had messages to handle after {timeout}s"
                    )
        finally:
            for instance in instances:
                instance.stop()
        return self.handed_out - before


def _topic_class_named(name: str) -> TopicConsumer | None:
    """An instance of a concrete topic class whose ``name`` is ``name`` (or ``None``)."""
    found: TopicConsumer | None = None
    pending: list[type] = [TopicConsumer]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__dict__.get("name") == name and not getattr(cls, "__abstractmethods__", None):
            try:
                found = cls()
            except Exception:  # a topic that needs arguments
                continue
    return found


def _registered_consumers() -> list[type[Consumer]]:
    registry = kafka.consumers
    return [registry[key] for key in registry]
