"""CQRS figures for ``manage.py messaging_status`` and the Prometheus gauges.

On a master: messages stored in ``PendingMessage`` because the broker had not confirmed them,
and how long the oldest has waited. On a replica (``MESSAGING["CQRS"]["queue"]`` set, over
RabbitMQ): the messages waiting in its queue and in its dead letter queue, read with passive
declares (nothing is created).
"""

from __future__ import annotations

from django.db import router
from django.db.models import Count, Min
from django.utils import timezone

from django_messaging.core.status import Figure, Kind, Unreachable
from django_messaging.cqrs.conf import dead_letter_queue, settings
from django_messaging.cqrs.models import PendingMessage


def pending_figures(timeout: float) -> list[Figure]:
    rows = PendingMessage.objects.using(router.db_for_read(PendingMessage))
    pending = rows.aggregate(n=Count("pk"), oldest=Min("created"))
    oldest = pending["oldest"]
    age = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest is not None else 0.0
    return [
        Figure(
            "cqrs",
            "cqrs_pending",
            Kind.BACKLOG,
            pending["n"],
            help="CQRS messages not confirmed by the broker yet",
        ),
        Figure(
            "cqrs",
            "cqrs_oldest_pending_age_seconds",
            Kind.AGE,
            round(age, 3),
            help="seconds since the oldest pending CQRS message was stored",
        ),
    ]


def uses_rabbitmq() -> bool:
    url = settings.url or ""
    return bool(settings.queue) and (not url or url.split("://", 1)[0] in ("amqp", "amqps"))


def queue_figures(timeout: float) -> list[Figure]:
    if not uses_rabbitmq():
        return []
    import pika

    from django_messaging.cqrs.transport.amqp import (
        AMQP_ERRORS,
        connection_parameters,
        describe_broker,
    )

    params = connection_parameters()
    params.connection_attempts = 1
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    try:
        connection = pika.BlockingConnection(params)
    except AMQP_ERRORS as exc:
        raise Unreachable(f"RabbitMQ at {describe_broker()}: {exc!r}") from exc
    try:
        figures = []
        for metric, kind, queue in (
            ("cqrs_replica_queue_depth", Kind.LAG, settings.queue),
            ("cqrs_dead_letters", Kind.DEAD_LETTERS, dead_letter_queue()),
        ):
            channel = connection.channel()
            try:
                depth = channel.queue_declare(queue=queue, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet: nothing waits
                depth = 0
            else:
                channel.close()
            figures.append(Figure("cqrs", metric, kind, depth, (("queue", queue),)))
        return figures
    finally:
        if connection.is_open:
            connection.close()
