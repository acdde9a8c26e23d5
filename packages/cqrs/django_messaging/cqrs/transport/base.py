"""The interface every transport implements."""

from __future__ import annotations

from typing import Any

from django_messaging.cqrs.dataclasses import TransportPayload


class BaseTransport:
    """Base class of transports (AMQP, Kombu, your own).

    ``produce`` must raise when the message was not accepted by the broker: the caller then
    stores it and sends it later. ``consume`` runs until stopped.
    """

    @staticmethod
    def produce(payload: TransportPayload) -> None:
        """Send a master's message to the replicas."""
        raise NotImplementedError

    @staticmethod
    def consume(*args: Any, **kwargs: Any) -> None:
        """Receive messages and apply them to replica models."""
        raise NotImplementedError

    @staticmethod
    def clean_connection(*args: Any, **kwargs: Any) -> None:
        """Close whatever connection the transport keeps."""
