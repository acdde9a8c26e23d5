"""Broker transports the relay and the direct producer send through."""

from django_messaging.outbox.transports.base import (
    BatchResult,
    Confirmations,
    OutgoingMessage,
    Transport,
)

__all__ = ["BatchResult", "Confirmations", "OutgoingMessage", "Transport"]
