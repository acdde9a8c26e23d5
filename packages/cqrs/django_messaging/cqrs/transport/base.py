"""The interface every transport implements, and what a transport reports back."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django_messaging.core import transports as core
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

    @classmethod
    def relay_transport(cls) -> core.Transport:
        """What the relay of stored messages sends through: the core transport seam. This
        default calls :meth:`produce` for each message; a transport with publisher confirms
        returns its own (see :class:`~.rabbit_mq.RabbitMQTransport`)."""
        return ProducingTransport(cls)


@dataclass(frozen=True)
class PayloadMessage(core.OutgoingMessage):
    """A stored master message for the relay, with the payload it was read as."""

    payload: TransportPayload | None = field(default=None, compare=False)


class ProducingTransport(core.Transport):
    """The core seam over any transport's ``produce`` (which raises unless the broker took the
    message): a message is confirmed when ``produce`` returned; after a failure the rest of the
    batch is left unsent, as the stored messages go oldest first."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self._open = False
        self._polled = core.Confirmations()

    def open(self) -> None:
        self._open = True

    def is_open(self) -> bool:
        return self._open

    def send(self, messages: Sequence[core.OutgoingMessage]) -> list[Hashable]:
        for index, message in enumerate(messages):
            payload = getattr(message, "payload", None)
            try:
                if payload is None:
                    raise TypeError(f"{type(message).__name__} carries no CQRS payload")
                self.transport.produce(payload)
            except Exception as exc:
                self._polled.rejected.append(message.key)
                self._polled.error = f"{type(exc).__name__}: {exc}"
                return [m.key for m in messages[index + 1 :]]
            self._polled.confirmed.append(message.key)
        return []

    def poll(self, timeout: float) -> core.Confirmations:
        polled, self._polled = self._polled, core.Confirmations()
        return polled

    def close(self) -> None:
        self._open = False
