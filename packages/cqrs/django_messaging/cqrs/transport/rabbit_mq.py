"""RabbitMQ transport on pika, wire-compatible with django-cqrs (see :mod:`.wire`).

Publishing goes through the core transport seam on pika (:class:`~.confirming.PikaTransport`:
publisher confirms, ``mandatory``), one connection per thread (:data:`~.base.LINK`, opened again
after a fork or a broken connection): :meth:`RabbitMQTransport.produce` raises
:class:`~django_messaging.cqrs.exceptions.PublishError` when the broker did not confirm, and the
master then stores the message to send it later; the publisher thread and the relay of stored
messages poll the same transport's confirms. Consuming is the broker-neutral
:class:`~.replica.ReplicaConsumer` on a pika connection.
"""

from __future__ import annotations

import logging
from typing import Any

import pika

from django_messaging.core.transports import Transport
from django_messaging.core.worker import Worker, run_worker
from django_messaging.cqrs.conf import dead_letter_queue, settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.transport.amqp import AMQP_ERRORS, connection_parameters, describe_broker
from django_messaging.cqrs.transport.base import LINK, BaseTransport, publish_confirmed
from django_messaging.cqrs.transport.confirming import PikaTransport
from django_messaging.cqrs.transport.replica import ReplicaConsumer
from django_messaging.cqrs.transport.wire import (
    CONTENT_TYPE,
    ERROR_HEADER,
    QUEUE_HEADER,
    Delivery,
    delay_queue_arguments,
    encode,
    properties,
    routing_key,
)

__all__ = [
    "AMQP_ERRORS",
    "CONTENT_TYPE",
    "ERROR_HEADER",
    "QUEUE_HEADER",
    "Delivery",
    "RabbitMQConsumer",
    "RabbitMQTransport",
    "connection_parameters",
    "declare_replica_topology",
    "delay_queue_arguments",
    "describe_broker",
    "encode",
    "properties",
    "routing_key",
]

logger = logging.getLogger(__name__)


def declare_replica_topology(channel: Any, cqrs_ids: list[str]) -> None:
    exchange = settings.EXCHANGE
    queue = settings.QUEUE
    dlq = dead_letter_queue()
    channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    channel.queue_declare(queue=queue, durable=True)
    channel.queue_declare(queue=dlq, durable=True)
    for cqrs_id in cqrs_ids:
        channel.queue_bind(queue=queue, exchange=exchange, routing_key=cqrs_id)
        channel.queue_bind(queue=queue, exchange=exchange, routing_key=f"cqrs.{queue}.{cqrs_id}")
        channel.queue_bind(queue=dlq, exchange=exchange, routing_key=f"cqrs.{dlq}.{cqrs_id}")


class RabbitMQTransport(BaseTransport):
    """Publish and consume over RabbitMQ (AMQP 0-9-1) with pika."""

    pipelined = True

    @classmethod
    def produce(cls, payload: TransportPayload) -> None:
        """Publish ``payload`` and wait for the broker's confirm; PublishError without one."""
        publish_confirmed(cls, payload, f"RabbitMQ at {describe_broker()}")

    @classmethod
    def clean_connection(cls) -> None:
        """Close this thread's publishing connection."""
        LINK.close()

    @classmethod
    def relay_transport(cls) -> Transport:
        """A new publishing connection: the core seam with publisher confirms."""
        return PikaTransport()

    @classmethod
    def consume(cls, cqrs_ids: list[str] | None = None) -> None:
        """Consume until SIGTERM/SIGINT (the core worker runtime)."""
        run_worker(cls.consumer_worker(cqrs_ids))

    @classmethod
    def consumer_worker(cls, cqrs_ids: list[str] | None = None) -> Worker:
        """One consumer for ``cqrs_consume`` (which runs ``-w`` of them)."""
        return RabbitMQConsumer(cqrs_ids)


class RabbitMQConsumer(ReplicaConsumer):
    """The replica worker on a pika connection."""

    name = "cqrs_consume"
    broker_errors = AMQP_ERRORS

    def __init__(self, cqrs_ids: list[str] | None = None) -> None:
        super().__init__(cqrs_ids)
        self.channel: Any = None
        self.publish_channel: Any = None

    def describe(self) -> str:
        return f"RabbitMQ at {describe_broker()}"

    def _open(self) -> None:
        connection = pika.BlockingConnection(connection_parameters())
        channel = connection.channel()
        channel.basic_qos(prefetch_count=self._prefetch())
        declare_replica_topology(channel, self._cqrs_ids())
        publish_channel = connection.channel()
        publish_channel.confirm_delivery()
        self.buffer.clear()  # deliveries may arrive from here on: keep them
        channel.basic_consume(settings.QUEUE, self._on_message, auto_ack=False)
        self.connection, self.channel, self.publish_channel = connection, channel, publish_channel

    def _close(self) -> None:
        connection = self.connection
        self.channel = self.publish_channel = None
        if connection.is_open:
            connection.close()

    def stop(self) -> None:
        super().stop()
        LINK.close()  # what a replica model published from this thread

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self.buffer.append(
            Delivery(method.routing_key, props.headers or {}, body, method.delivery_tag)
        )

    def _fill(self, batch_size: int) -> None:
        if not self.buffer:
            self.connection.process_data_events(time_limit=0.5)
        while self.buffer and len(self.buffer) < batch_size:
            before = len(self.buffer)
            self.connection.process_data_events(time_limit=0)
            if len(self.buffer) == before:
                break

    def _idle(self, seconds: float) -> None:
        self.connection.process_data_events(time_limit=seconds)

    def _ack(self, batch: list[Delivery]) -> None:
        self.channel.basic_ack(delivery_tag=batch[-1].tag, multiple=True)

    def _ack_each(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self.channel.basic_ack(delivery_tag=delivery.tag)

    def _send(
        self,
        exchange: str,
        key: str,
        body: bytes,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        extra: dict[str, Any] = {"headers": headers}
        if expiration_ms:
            extra["expiration"] = str(expiration_ms)
        self.publish_channel.basic_publish(
            exchange=exchange,
            routing_key=key,
            body=body,
            properties=properties(**extra),
            mandatory=True,
        )

    def _declare_delay_queue(self, name: str, milliseconds: int) -> None:
        self.publish_channel.queue_declare(
            queue=name, durable=True, arguments=delay_queue_arguments(milliseconds)
        )
