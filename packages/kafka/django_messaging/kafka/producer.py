"""The process's Kafka producer, and suppression of what it sends.

``producer.suppress`` / ``producer.unsuppress`` are django-messaging's process-wide suppression
(:mod:`django_messaging.core.suppression`): ``with producer.suppress(["topic1"]):`` also silences
the outbox and CQRS, and ``with django_messaging.core.suppress():`` silences Kafka topics.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Producer as ConfluentProducer

from django_messaging.core import metrics, tracing
from django_messaging.core.suppression import is_suppressed, suppress, unsuppress
from django_messaging.kafka.config import producer_config

logger = logging.getLogger(__name__)

__all__ = ["Producer", "Suppression", "suppress", "unsuppress"]


class Suppression:
    """django-kafka's name for the suppression state: ``Suppression.active(topic)``."""

    @staticmethod
    def active(topic: str | None = None) -> bool:
        return is_suppressed(topic)


class Producer:
    """A ``confluent_kafka.Producer`` built from the settings; other attributes are proxied.

    Config precedence: ``client.id`` < ``GLOBAL_CONFIG`` < ``PRODUCER_CONFIG`` < ``config``
    class attribute < ``config`` argument.
    """

    config: dict[str, Any] = {}

    #: delivery reports are served (``poll(0)``) every this many messages, and at once for a
    #: message with an ``on_delivery``/``callback``.
    poll_every = 64

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.config = producer_config(type(self).config, config, kwargs)
        self._producer = ConfluentProducer(self.config)
        self._unpolled = 0

    def produce(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Produce to topic ``name`` unless it is suppressed here; serve delivery callbacks."""
        if is_suppressed(name):
            logger.debug("suppressed a message to %s", name)
            return
        self.send(name, *args, **kwargs)

    def send(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Produce without the suppression check (the caller did it)."""
        span = None
        if tracing.enabled and len(args) < 6:  # headers not given positionally
            span, kwargs["headers"] = tracing.begin_send("kafka", name, kwargs.get("headers"))
        producer = self._producer
        try:
            try:
                producer.produce(name, *args, **kwargs)
            except BufferError:
                # The local queue is full: let librdkafka deliver some, then try once more.
                producer.poll(1.0)
                producer.produce(name, *args, **kwargs)
        finally:
            if span is not None:
                span.end()
        self._unpolled += 1
        if metrics.enabled:
            metrics.produced("kafka", name)
        if self._unpolled >= self.poll_every or "on_delivery" in kwargs or "callback" in kwargs:
            self._unpolled = 0
            producer.poll(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def __len__(self) -> int:
        """Messages waiting for delivery."""
        return len(self._producer)

    def __repr__(self) -> str:
        return f"<Producer client.id={self.config.get('client.id')!r}>"
