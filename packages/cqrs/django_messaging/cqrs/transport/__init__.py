"""Transports: ``RabbitMQTransport`` (pika), ``KombuTransport``, and ``BaseTransport`` for your own.

``current_transport()`` is the class named by ``MESSAGING["CQRS"]["transport"]``, resolved when
called (never at import), so ``override_settings`` works.
"""

from __future__ import annotations

from typing import Any

from django_messaging.core.imports import import_from_setting
from django_messaging.cqrs.conf import settings
from django_messaging.cqrs.transport.base import BaseTransport, Confirmations
from django_messaging.cqrs.transport.mock import TransportMock
from django_messaging.cqrs.transport.rabbit_mq import RabbitMQTransport

__all__ = [
    "BaseTransport",
    "Confirmations",
    "KombuTransport",
    "RabbitMQTransport",
    "TransportMock",
    "current_transport",
]


_resolved: dict[str, Any] = {}


def current_transport() -> Any:
    value = settings.transport
    if not isinstance(value, str):
        return value
    transport = _resolved.get(value)
    if transport is None:
        transport = import_from_setting(value, "MESSAGING['CQRS']['transport']")
        _resolved[value] = transport
    return transport


def __getattr__(name: str) -> Any:
    # Kombu is an optional dependency: imported when asked for.
    if name == "KombuTransport":
        from django_messaging.cqrs.transport.kombu import KombuTransport

        return KombuTransport
    raise AttributeError(name)
