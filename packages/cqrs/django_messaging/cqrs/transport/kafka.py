"""Kafka transport: the CQRS payload, revisions, deletes, retries and dead letters over Kafka
(confluent-kafka), through core's Kafka transport.

Topics and records:

- **one topic per CQRS id**, ``<EXCHANGE>.<CQRS_ID>`` (``cqrs.author`` with the default
  ``EXCHANGE``): a replica subscribes to the topics of its replica models (or of
  ``cqrs_consume --cqrs-id``) only;
- the **record key** is ``<CQRS_ID>:<pk>``, so every message of one instance goes to one
  partition and is read in the order it was written (the relay sends one instance's stored
  messages in order, one at a time); the producer is idempotent, so its own retries neither
  duplicate nor reorder records;
- the **value** is the same JSON body as on RabbitMQ (``revision``, ``retries``, ``expires``...;
  a delete is a ``DELETE`` message, never a null-value record); a direct SYNC
  (``cqrs_sync --queue``) carries its target queue in the ``x-cqrs-queue`` header and the
  replicas of other queues skip it;
- each replica service is the **consumer group** ``QUEUE``; ``cqrs_consume -w N`` runs N
  members of it, which share the partitions (``KAFKA["TOPIC_PARTITIONS"]``);
- a failed message goes to the service's **retry topic** ``<QUEUE>.retry`` with the time it is
  due (``x-cqrs-retry-at``, epoch milliseconds) and comes back after its model's
  ``get_cqrs_retry_delay``; a message that cannot be applied goes to the **dead letter topic**
  ``dead_letter_<QUEUE>`` (``DEAD_LETTER_QUEUE``) with the reason in ``x-cqrs-error``.

Offsets are committed only after the replica's transaction committed and every retry or dead
letter it caused was confirmed; while the replica database is away messages wait, uncommitted.

Publish modes: ``"outbox"`` (the default: stored with the change, sent after the commit, and by
``cqrs_pending run`` when not confirmed) and ``"each"`` wait for the delivery report of each
message; ``"pipelined"`` has no publisher thread here and behaves as ``"each"``.

confluent-kafka is imported when a producer or consumer opens:
``pip install "django-messaging-cqrs[kafka]"`` (``manage.py check`` says when it is missing).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import replace

from django_messaging.core import tracing
from django_messaging.core.reconnect import Backoff
from django_messaging.core.transports import Transport
from django_messaging.core.transports import kafka as core_kafka
from django_messaging.core.worker import Worker, run_worker
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PublishError
from django_messaging.cqrs.transport.base import BaseTransport, PayloadMessage
from django_messaging.cqrs.transport.kafka_wire import (
    CONFIRM_TIMEOUT,
    KafkaRelayTransport,
    producer_config,
    topic_of,
)

__all__ = ["KafkaRelayTransport", "KafkaTransport"]


# -- publishing -------------------------------------------------------------------------------
#: Seconds a producer waits for the cluster's metadata when it opens.
OPEN_TIMEOUT = 5.0
#: The wait before a thread tries to reach Kafka again: meanwhile its saves store their
#: messages at once (``cqrs_pending run`` sends them) instead of each waiting for the cluster.
REOPEN = Backoff(initial=1.0, cap=30.0)


class _Producer(threading.local):
    transport: KafkaRelayTransport | None = None
    pid: int = 0
    failures: int = 0
    next_open: float = 0.0


_producer = _Producer()


def _thread_producer() -> KafkaRelayTransport:
    """This thread's producer (a new one after a fork or a fatal error)."""
    if _producer.pid != os.getpid():
        _producer.transport, _producer.pid = None, os.getpid()
        _producer.failures, _producer.next_open = 0, 0.0
    transport = _producer.transport
    if transport is not None and transport.is_open():
        return transport
    if transport is not None:
        transport.close()
    _producer.transport = None
    wait = _producer.next_open - time.monotonic()
    if wait > 0:
        raise core_kafka.KafkaTransportError(f"Kafka was unreachable; trying again in {wait:.1f}s")
    # One message at a time waits for its report: do not linger before sending it.
    transport = KafkaRelayTransport({"linger.ms": 0, **producer_config()})
    transport.timeout = OPEN_TIMEOUT
    try:
        transport.open()
    except Exception:
        _producer.failures += 1
        _producer.next_open = time.monotonic() + REOPEN.delay(_producer.failures)
        raise
    _producer.failures = 0
    _producer.transport = transport
    return transport


class KafkaTransport(BaseTransport):
    """Publish and consume over Kafka with confluent-kafka (see the module's text)."""

    @classmethod
    def produce(cls, payload: TransportPayload) -> None:
        """Write ``payload`` and wait for its delivery report; PublishError without one."""
        what = f"cqrs_id={payload.cqrs_id} pk={payload.pk}"
        try:
            transport = _thread_producer()
        except Exception as exc:
            raise PublishError(f"Kafka did not take {what}: {exc}") from exc
        message = PayloadMessage(
            key=uuid.uuid4().hex,
            destination="",
            body=payload.body(),
            headers=dict(payload.trace) if payload.trace else {},
            payload=payload,
        )
        if tracing.enabled:
            tracing.send_all("kafka", [replace(message, destination=topic_of(payload.cqrs_id))])
        result = transport.send_batch([message], lambda keys: None, CONFIRM_TIMEOUT)
        if result.confirmed:
            return
        # What may still be queued must not overtake the message sent again later.
        cls.clean_connection()
        raise PublishError(f"Kafka did not confirm {what}: {result.error}")

    @classmethod
    def clean_connection(cls) -> None:
        transport, _producer.transport = _producer.transport, None
        if transport is not None and _producer.pid == os.getpid():
            transport.close()

    @classmethod
    def relay_transport(cls) -> Transport:
        """The relay's own producer; delivery reports are its confirmations."""
        return KafkaRelayTransport()

    @classmethod
    def consume(cls, cqrs_ids: list[str] | None = None) -> None:
        """Consume until SIGTERM/SIGINT (the core worker runtime)."""
        run_worker(cls.consumer_worker(cqrs_ids))

    @classmethod
    def consumer_worker(cls, cqrs_ids: list[str] | None = None) -> Worker:
        """One member of the replica's consumer group (``cqrs_consume -w N`` runs N)."""
        from django_messaging.cqrs.transport.kafka_replica import KafkaReplicaConsumer

        return KafkaReplicaConsumer(cqrs_ids)
