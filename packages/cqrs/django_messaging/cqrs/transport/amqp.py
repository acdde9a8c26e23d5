"""pika connections: parameters from the settings, the errors that mean "connection lost"."""

from __future__ import annotations

import os

import pika
from pika import exceptions as pika_exceptions

from django_messaging.core.redact import redact_url
from django_messaging.cqrs.conf import settings

AMQP_ERRORS = (
    pika_exceptions.AMQPError,
    pika_exceptions.ChannelError,
    pika_exceptions.ReentrancyError,
    OSError,
    AssertionError,
)


def connection_parameters() -> pika.ConnectionParameters:
    """pika parameters from ``url`` (amqp/amqps, vhost kept) or the host/port/user/password keys."""
    url = settings.URL
    if url:
        params: pika.ConnectionParameters = pika.URLParameters(url)
    else:
        params = pika.ConnectionParameters(
            host=settings.HOST or "localhost",
            port=settings.PORT or 5672,
            credentials=pika.PlainCredentials(
                settings.USER or "guest", settings.PASSWORD or "guest"
            ),
        )
    params.heartbeat = settings.HEARTBEAT
    params.blocked_connection_timeout = 10
    params.client_properties = {"connection_name": f"django-messaging-cqrs pid {os.getpid()}"}
    for key, value in settings.CONNECTION_OPTIONS.items():
        setattr(params, key, value)
    return params


def describe_broker() -> str:
    url = settings.URL
    if url:
        return redact_url(url)
    return f"{settings.HOST or 'localhost'}:{settings.PORT or 5672}"
