from __future__ import annotations

from typing import Any

import pika
from django.core.management.base import BaseCommand, CommandError

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.conf import dead_letter_queue, settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.registries import ReplicaRegistry
from django_messaging.cqrs.transport.rabbit_mq import (
    QUEUE_HEADER,
    connection_parameters,
    declare_replica_topology,
    encode,
    properties,
)
from django_messaging.cqrs.utils import get_message_expiration_dt


class Command(BaseCommand):
    help = (
        "Inspect, retry or purge this replica service's dead letter queue (RabbitMQ).\n\n"
        "  dump   print every dead letter (they stay in the queue)\n"
        "  retry  send every dead letter back to the service queue with retries=0 and a fresh "
        "expiry (CQRS_MESSAGE_TTL)\n"
        "  purge  delete every dead letter\n\n"
        "Example: python manage.py cqrs_dead_letters dump"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("command", choices=["dump", "retry", "purge"])

    def handle(self, *args: Any, command: str, **options: Any) -> None:
        if not settings.QUEUE:
            raise CommandError("MESSAGING['CQRS']['queue'] is not set.")
        try:
            connection = pika.BlockingConnection(connection_parameters())
        except pika.exceptions.AMQPError as exc:
            raise CommandError(f"Cannot connect to RabbitMQ: {exc}") from exc
        try:
            channel = connection.channel()
            declare_replica_topology(channel, list(ReplicaRegistry.models))
            dlq = dead_letter_queue()
            count = channel.queue_declare(queue=dlq, durable=True).method.message_count
            getattr(self, f"_{command}")(channel, dlq, count)
        finally:
            if connection.is_open:
                connection.close()

    def _dump(self, channel: Any, dlq: str, count: int) -> None:
        for _ in range(count):
            method, _props, body = channel.basic_get(dlq, auto_ack=False)
            if method is None:
                break
            self.stdout.write(body.decode("utf-8", errors="replace"))
        # Unacknowledged: they go back to the queue when the connection closes.

    def _retry(self, channel: Any, dlq: str, count: int) -> None:
        channel.confirm_delivery()
        loads = get_serializer("json").loads
        retried = kept = 0
        for _ in range(count):
            method, props, body = channel.basic_get(dlq, auto_ack=False)
            if method is None:
                break
            try:
                payload = TransportPayload.from_message(loads(body))
            except Exception as exc:
                self.stderr.write(f"Kept an unreadable dead letter ({exc}): {body[:200]!r}")
                channel.basic_nack(method.delivery_tag, requeue=True)
                kept += 1
                continue
            payload.retries = 0
            fresh = TransportPayload(
                payload.signal_type,
                payload.cqrs_id,
                payload.instance_data,
                payload.pk,
                previous_data=payload.previous_data,
                correlation_id=payload.correlation_id,
                expires=get_message_expiration_dt() if payload.expires else None,
                meta=payload.meta,
            )
            headers = {}
            if (props.headers or {}).get(QUEUE_HEADER):
                headers[QUEUE_HEADER] = props.headers[QUEUE_HEADER]
            channel.basic_publish(
                exchange="",
                routing_key=settings.QUEUE,
                body=encode(fresh),
                properties=properties(headers=headers),
                mandatory=True,
            )
            channel.basic_ack(method.delivery_tag)
            self.stdout.write(encode(fresh).decode())
            retried += 1
        self.stderr.write(f"Retried {retried} dead letter(s); kept {kept}.")

    def _purge(self, channel: Any, dlq: str, count: int) -> None:
        channel.queue_purge(dlq)
        self.stderr.write(f"Purged {count} dead letter(s) from {dlq}.")
