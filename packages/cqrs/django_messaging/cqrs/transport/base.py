"""The interface every transport implements, and what a transport reports back."""

from __future__ import annotations

from typing import Any, Protocol

from django_messaging.cqrs.dataclasses import TransportPayload


class Confirmations(Protocol):
    """Told by a transport what became of messages it sent without waiting for the broker.

    The publishing side hands one to ``publish_unconfirmed``; the transport calls it from its
    own thread and never reaches into the publishing side otherwise.
    """

    def confirmed(self, payloads: list[TransportPayload]) -> None:
        """The broker confirmed these."""

    def failed(self, payloads: list[TransportPayload], error: BaseException) -> None:
        """Refused (nack), never confirmed, or not sent at all: keep them to send later."""

    def published(self, payloads: list[TransportPayload]) -> None:
        """These went out: the broker takes messages again."""

    def settle(self, force: bool = False) -> None:
        """Nothing more to send for now (``force``: the process is finishing)."""


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
