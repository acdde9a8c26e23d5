"""The replica worker on a confluent-kafka consumer (see :mod:`.kafka` for the topics).

- Offsets are committed synchronously after a batch was applied (its transaction committed)
  and every retry or dead letter it caused was confirmed; a crash before that re-reads the
  batch, which the revisions make harmless.
- Messages held while the replica database is away stay uncommitted; nothing after them in
  their batch is committed before they are applied.
- A retried message not yet due pauses its retry-topic partition, which is sought back to it
  and resumed when it is due: it waits in Kafka, never in the worker's memory.
- A direct SYNC for another service's queue is skipped.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from django_messaging.core.redact import redact_url
from django_messaging.core.transports import OutgoingMessage
from django_messaging.core.transports.kafka import KafkaTransport, KafkaTransportError
from django_messaging.cqrs.conf import kafka_setting, settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PublishError
from django_messaging.cqrs.transport.kafka_wire import (
    CONFIRM_TIMEOUT,
    RETRY_AT_HEADER,
    consumer_config,
    dead_letter_topic,
    ensure_topics,
    producer_config,
    retry_topic,
    topic_of,
)
from django_messaging.cqrs.transport.replica import ReplicaConsumer
from django_messaging.cqrs.transport.wire import QUEUE_HEADER, Delivery, failure_headers

__all__ = ["KafkaReplicaConsumer"]

logger = logging.getLogger(__name__)

Partition = tuple[str, int]


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", errors="replace")


class KafkaReplicaConsumer(ReplicaConsumer):
    """One member of the replica service's consumer group (``QUEUE``)."""

    name = "cqrs_consume (kafka)"
    messaging_system = "kafka"
    broker_errors: ClassVar[tuple[type[BaseException], ...]] = (
        KafkaException,
        KafkaTransportError,
        PublishError,
    )

    def __init__(self, cqrs_ids: list[str] | None = None) -> None:
        super().__init__(cqrs_ids)
        self.producer: KafkaTransport | None = None
        #: Retry-topic partitions paused until their first message is due (epoch seconds).
        self.paused: dict[Partition, float] = {}
        #: Applied (or skipped) but not committed yet: committed with the next full batch.
        self.uncommitted: list[Delivery] = []
        self.all_paused = False

    def describe(self) -> str:
        servers = str(consumer_config().get("bootstrap.servers") or "(no bootstrap.servers)")
        return f"Kafka at {redact_url(servers)} (group {settings.QUEUE})"

    # -- connection ------------------------------------------------------------------------
    def _topics(self) -> list[str]:
        return [topic_of(cqrs_id) for cqrs_id in self._cqrs_ids()] + [retry_topic()]

    def _open(self) -> None:
        config = consumer_config()
        topics = self._topics()
        ensure_topics([*topics, dead_letter_topic()], config)
        producer = KafkaTransport(
            producer_config(),
            create_topics=bool(kafka_setting("CREATE_TOPICS")),
            topic_partitions=int(kafka_setting("TOPIC_PARTITIONS")),
        )
        producer.open()
        try:
            consumer = Consumer(config)
            consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        except BaseException:
            producer.close()
            raise
        self.buffer.clear()
        self.uncommitted.clear()
        self.paused.clear()
        self.all_paused = False
        self.connection, self.producer = consumer, producer

    def _close(self) -> None:
        consumer, self.connection = self.connection, None
        producer, self.producer = self.producer, None
        try:
            consumer.close()  # leaves the group: its partitions go to the other members now
        finally:
            if producer is not None:
                producer.close()

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.all_paused = False  # a new assignment is fetched from
        logger.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Another member reads these from their committed offsets: forget ours."""
        revoked = {(p.topic, p.partition) for p in partitions}
        self.buffer[:] = [d for d in self.buffer if d.tag[:2] not in revoked]
        self.uncommitted[:] = [d for d in self.uncommitted if d.tag[:2] not in revoked]
        for partition in revoked:
            self.paused.pop(partition, None)

    # -- fetching --------------------------------------------------------------------------
    def _take(self, limit: int, timeout: float) -> None:
        self._resume_due()
        if limit <= 0:
            return
        held: set[Partition] = set()
        for message in self.connection.consume(num_messages=limit, timeout=timeout):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("Kafka consumer: %s", error)
                continue
            partition: Partition = (message.topic(), message.partition())
            if partition in held:
                continue  # read again once the partition resumes
            headers = {name: _text(value) for name, value in message.headers() or ()}
            if message.topic() == retry_topic():
                due = self._due(headers)
                if due > time.time():
                    self._hold(message, due)
                    held.add(partition)
                    continue
            self.buffer.append(
                Delivery(
                    message.topic(),
                    headers,
                    message.value() or b"",
                    (message.topic(), message.partition(), message.offset()),
                )
            )

    @staticmethod
    def _due(headers: dict[str, str]) -> float:
        try:
            return int(headers.get(RETRY_AT_HEADER) or 0) / 1000
        except ValueError:
            return 0.0  # not ours to judge: the replica dead-letters what it cannot read

    def _hold(self, message: Any, due: float) -> None:
        """Pause the partition and seek it back to ``message``: it is read again when due."""
        where = TopicPartition(message.topic(), message.partition(), message.offset())
        self.connection.pause([where])
        self.connection.seek(where)
        self.paused[(message.topic(), message.partition())] = due

    def _resume_due(self) -> None:
        if not self.paused:
            return
        now = time.time()
        due = [partition for partition, at in self.paused.items() if at <= now]
        if due:
            self.connection.resume([TopicPartition(t, p) for t, p in due])
            for partition in due:
                del self.paused[partition]

    def _pause_all(self, paused: bool) -> None:
        """Stop (or restart) fetching while the buffer is full, still taking part in the group."""
        if paused == self.all_paused:
            return
        assignment = self.connection.assignment()
        if paused:
            self.connection.pause(assignment)
        else:
            self.connection.resume(
                [p for p in assignment if (p.topic, p.partition) not in self.paused]
            )
        self.all_paused = paused

    def _fill(self, batch_size: int) -> None:
        self._pause_all(False)
        self._take(batch_size - len(self.buffer), 0 if self.buffer else 0.5)

    def _idle(self, seconds: float) -> None:
        room = self._prefetch() - len(self.buffer)
        if room > 0:
            self._pause_all(False)
            self._take(room, seconds)
        else:
            self._pause_all(True)
            # Nothing comes from paused partitions, but a rebalance may hand over new ones:
            # what they deliver is kept (a message read and dropped would be skipped).
            self._take(1, seconds)

    # -- acknowledging ---------------------------------------------------------------------
    def _accept(self, delivery: Delivery) -> TransportPayload | None:
        target = delivery.headers.get(QUEUE_HEADER)
        if target and target != settings.QUEUE:
            return None  # a direct SYNC for another service
        return super()._accept(delivery)

    def _ack(self, batch: list[Delivery]) -> None:
        self._commit([*self.uncommitted, *batch])
        self.uncommitted.clear()

    def _ack_each(self, deliveries: list[Delivery]) -> None:
        # Messages held before them may sit in the same partitions: committed with the batch
        # that applies those.
        self.uncommitted.extend(deliveries)

    def _commit(self, deliveries: Iterable[Delivery]) -> None:
        offsets: dict[Partition, int] = {}
        for delivery in deliveries:
            topic, partition, offset = delivery.tag
            offsets[(topic, partition)] = max(offsets.get((topic, partition), 0), offset + 1)
        if not offsets:
            return
        try:
            self.connection.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            # A rebalance took the partitions: their new reader starts from the last commit.
            logger.warning("could not commit offsets (%s); those messages are read again", exc)

    # -- retries and dead letters ----------------------------------------------------------
    def _retry(self, payload: TransportPayload, delay: float, reason: str) -> None:
        headers = failure_headers(reason, payload.queue)
        headers[RETRY_AT_HEADER] = str(int((time.time() + max(delay, 0)) * 1000))
        self._send("", retry_topic(), payload.body(), headers)

    def _send(
        self,
        exchange: str,
        key: str,
        body: bytes,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        """Write ``body`` to the topic ``key`` and wait for its delivery report."""
        assert self.producer is not None
        message = OutgoingMessage(
            key=uuid.uuid4().hex,
            destination=key,
            body=body,
            raw_headers=[(name, str(value).encode()) for name, value in headers.items()],
        )
        result = self.producer.send_batch([message], lambda keys: None, CONFIRM_TIMEOUT)
        if not result.confirmed:
            raise PublishError(f"Kafka did not confirm a message to {key!r}: {result.error}")

    def _declare_delay_queue(self, name: str, milliseconds: int) -> None:
        raise NotImplementedError("Kafka retries go to the retry topic")
