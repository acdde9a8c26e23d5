"""Build stomp.py connections, producers and consumers from ``MESSAGING["OUTBOX"]``.

Every call reads the settings afresh, so ``override_settings`` applies to the next connection.
The connection helpers live in :mod:`django_messaging.outbox.connection`; they are importable
from here as before.
"""

from __future__ import annotations

from typing import Any

from django_messaging.outbox.connection import (
    CONNECT_TIMEOUT,
    connect,
    disconnect,
    factory_connection,
    host_and_ports,
)
from django_messaging.outbox.consumers import Consumer
from django_messaging.outbox.producers import Producer

__all__ = [
    "CONNECT_TIMEOUT",
    "connect",
    "disconnect",
    "factory_connection",
    "factory_consumer",
    "factory_producer",
    "host_and_ports",
]


def factory_producer() -> Producer:
    """A producer for direct sends: ``with factory_producer() as p: p.send_event(...)``."""
    return Producer()


def factory_consumer(callback: Any, destination: str, queue_name: str | None = None) -> Consumer:
    """A subscriber for ``destination``; run it with ``run_worker(consumer)``."""
    return Consumer(callback, destination, queue_name)
