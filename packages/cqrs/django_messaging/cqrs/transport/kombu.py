"""Kombu transport: the same topology, payload, retries and dead letters over any Kombu broker.

On AMQP brokers (``amqp://``, ``amqps://``, ``pyamqp://``) it behaves exactly like
:class:`~django_messaging.cqrs.transport.rabbit_mq.RabbitMQTransport`: publisher confirms,
broker-side delay queues, dead letters with a TTL. On brokers without per-queue TTLs (Redis,
SQS...) a failed message is re-queued at once with its retry count raised, and dead letters are
kept without expiry. Unlike django-cqrs's Kombu transport, failures are never dropped and an
exception in a replica never stops the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from kombu import Connection, Exchange, Producer, Queue, binding
from kombu.exceptions import KombuError, OperationalError

from django_messaging.core.redact import redact_url
from django_messaging.core.worker import Worker, run_worker
from django_messaging.cqrs.conf import dead_letter_queue, settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PublishError
from django_messaging.cqrs.transport.base import BaseTransport
from django_messaging.cqrs.transport.replica import ReplicaConsumer
from django_messaging.cqrs.transport.wire import (
    CONTENT_TYPE,
    Delivery,
    delay_queue_arguments,
    routing_key,
)

logger = logging.getLogger(__name__)
ERRORS = (KombuError, OperationalError, OSError, socket.timeout)
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def broker_url() -> str:
    return settings.URL or "amqp://localhost"


def is_amqp() -> bool:
    return broker_url().split("://", 1)[0].split("+")[0] in AMQP_SCHEMES


def connection() -> Connection:
    options = {"confirm_publish": True} if is_amqp() else {}
    return Connection(broker_url(), heartbeat=settings.HEARTBEAT or None, transport_options=options)


def exchange() -> Exchange:
    return Exchange(settings.EXCHANGE, type="topic", durable=True)


def service_queues(cqrs_ids: list[str]) -> tuple[Queue, Queue]:
    queue, dlq, ex = settings.QUEUE, dead_letter_queue(), exchange()
    main = Queue(
        queue,
        bindings=[binding(ex, routing_key=k) for c in cqrs_ids for k in (c, f"cqrs.{queue}.{c}")],
        durable=True,
    )
    dead = Queue(
        dlq, bindings=[binding(ex, routing_key=f"cqrs.{dlq}.{c}") for c in cqrs_ids], durable=True
    )
    return main, dead


class _State(threading.local):
    connection: Any = None
    producer: Any = None
    pid: int = 0


_state = _State()


class KombuTransport(BaseTransport):
    """Publish and consume through Kombu (any broker Kombu supports)."""

    @classmethod
    def _producer(cls) -> Producer:
        if _state.pid != os.getpid():
            _state.connection = _state.producer = None
            _state.pid = os.getpid()
        if _state.producer is None:
            conn = connection()
            conn.ensure_connection(max_retries=1)
            _state.connection = conn
            _state.producer = Producer(conn.channel(), exchange=exchange(), auto_declare=True)
        return _state.producer

    @classmethod
    def produce(cls, payload: TransportPayload) -> None:
        body = payload.body()
        last: BaseException | None = None
        for _attempt in range(2):
            try:
                cls._producer().publish(
                    body,
                    routing_key=routing_key(payload),
                    content_type=CONTENT_TYPE,
                    content_encoding="utf-8",
                    delivery_mode=2,
                )
                return
            except ERRORS as exc:
                last = exc
                cls.clean_connection()
        raise PublishError(
            f"{redact_url(broker_url())} did not take cqrs_id={payload.cqrs_id} pk={payload.pk}: "
            f"{type(last).__name__}: {last}"
        ) from last

    @classmethod
    def clean_connection(cls) -> None:
        conn, _state.connection, _state.producer = _state.connection, None, None
        if conn is not None and _state.pid == os.getpid():
            try:
                conn.release()
            except ERRORS:
                pass

    @classmethod
    def consume(cls, cqrs_ids: list[str] | None = None) -> None:
        run_worker(cls.consumer_worker(cqrs_ids))

    @classmethod
    def consumer_worker(cls, cqrs_ids: list[str] | None = None) -> Worker:
        return KombuConsumer(cqrs_ids)


class KombuConsumer(ReplicaConsumer):
    """The replica worker on a Kombu connection."""

    name = "cqrs_consume (kombu)"
    broker_errors = ERRORS

    def __init__(self, cqrs_ids: list[str] | None = None) -> None:
        super().__init__(cqrs_ids)
        self.consumer: Any = None
        self.producer: Any = None

    def describe(self) -> str:
        return f"{redact_url(broker_url())} (kombu)"

    def _open(self) -> None:
        conn = connection()
        conn.ensure_connection(max_retries=1)
        channel = conn.channel()
        main, dead = service_queues(self._cqrs_ids())
        main.bind(channel).declare()
        dead.bind(channel).declare()
        # Retries and dead letters go through the default exchange, straight to a queue.
        producer = Producer(conn.channel(), exchange=Exchange(""), auto_declare=False)
        self.buffer.clear()  # deliveries may arrive from here on: keep them
        consumer = conn.Consumer(
            queues=[main], on_message=self._on_kombu_message, prefetch_count=self._prefetch()
        )
        consumer.consume()
        self.connection, self.consumer, self.producer = conn, consumer, producer

    def _close(self) -> None:
        self.consumer = self.producer = None
        self.connection.release()

    def _on_kombu_message(self, message: Any) -> None:
        self.buffer.append(
            Delivery(
                message.delivery_info.get("routing_key", ""),
                message.headers or {},
                message.body,
                message,
            )
        )

    def _fill(self, batch_size: int) -> None:
        timeout = 0.5
        while len(self.buffer) < batch_size:
            try:
                self.connection.drain_events(timeout=timeout)
            except TimeoutError:
                break
            timeout = 0.01

    def _idle(self, seconds: float) -> None:
        try:
            self.connection.drain_events(timeout=seconds)
        except TimeoutError:
            pass

    def _ack(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            delivery.tag.ack()

    def _ack_each(self, deliveries: list[Delivery]) -> None:
        self._ack(deliveries)

    def _send(
        self,
        exchange_name: str,
        key: str,
        body: bytes,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if expiration_ms and is_amqp():
            extra["expiration"] = expiration_ms / 1000
        self.producer.publish(
            body,
            exchange=exchange_name,
            routing_key=key,
            headers=headers,
            content_type=CONTENT_TYPE,
            content_encoding="utf-8",
            delivery_mode=2,
            mandatory=is_amqp(),
            **extra,
        )

    def _retry(self, payload: TransportPayload, delay: float, reason: str) -> None:
        if not is_amqp():
            delay = 0  # no broker-side TTL to wait on: straight back into the queue
        super()._retry(payload, delay, reason)

    def _declare_delay_queue(self, name: str, milliseconds: int) -> None:
        Queue(name, durable=True, queue_arguments=delay_queue_arguments(milliseconds)).bind(
            self.producer.channel
        ).declare()
