"""Broker transports the relay and the direct producer send through: STOMP here, Kafka and AMQP
in core, chosen per row by name (:mod:`.named`)."""

from django_messaging.outbox.transports.base import (
    BatchResult,
    Confirmations,
    OutgoingMessage,
    Transport,
)

__all__ = ["BatchResult", "Confirmations", "OutgoingMessage", "Transport"]
