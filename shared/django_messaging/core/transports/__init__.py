"""The seam between a relay and a broker: what every broker client implements."""

from django_messaging.core.transports.base import (
    BatchResult,
    Confirmations,
    OutgoingMessage,
    Transport,
)

__all__ = ["BatchResult", "Confirmations", "OutgoingMessage", "Transport"]
