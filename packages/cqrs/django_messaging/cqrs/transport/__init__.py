"""Transports: ``RabbitMQTransport`` (pika), ``KombuTransport``, ``KafkaTransport``
(confluent-kafka), and ``BaseTransport`` for your own.

``current_transport()`` is the class named by ``MESSAGING["CQRS"]["transport"]``, resolved when
called (never at import), so ``override_settings`` works.
"""

from __future__ import annotations

from typing import Any

from django_messaging.cqrs.conf import settings
from django_messaging.cqrs.transport.base import BaseTransport
from django_messaging.cqrs.transport.mock import TransportMock

__all__ = [
    "BaseTransport",
    "KafkaTransport",
    "KombuTransport",
    "RabbitMQTransport",
    "TransportMock",
    "current_transport",
]


def current_transport() -> Any:
    return settings.imported("transport")


def __getattr__(name: str) -> Any:
    # Each client library is imported when its transport is asked for: a process that never
    # opens a RabbitMQ connection (a Kafka project, most management commands) skips pika.
    if name == "RabbitMQTransport":
        from django_messaging.cqrs.transport.rabbit_mq import RabbitMQTransport

        return RabbitMQTransport
    if name == "KombuTransport":  # Kombu is an optional dependency
        from django_messaging.cqrs.transport.kombu import KombuTransport

        return KombuTransport
    if name == "KafkaTransport":  # confluent-kafka is imported when a client opens
        from django_messaging.cqrs.transport.kafka import KafkaTransport

        return KafkaTransport
    raise AttributeError(name)
