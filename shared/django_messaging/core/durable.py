"""Durable sends: a message that leaves only if the database transaction around it commits.

Packages cannot import one another, so the seam lives here. The outbox app registers a
:class:`DurableSender` when it is installed (it writes the message as an outbox row in the
caller's transaction, and its relay sends the row after the commit); a package that offers
transactional sends (``django_messaging.kafka``'s ``Topic.produce(..., on_commit=True)``)
calls :func:`send_durably`. Without the outbox app, :func:`send_durably` raises
``ImproperlyConfigured`` saying what to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

__all__ = ["DurableMessage", "DurableSender", "register_durable_sender", "send_durably"]


@dataclass(frozen=True)
class DurableMessage:
    """One message, exactly as the broker is to receive it."""

    #: The name of the transport that sends it (``MESSAGING["OUTBOX"]["TRANSPORTS"]``).
    transport: str
    #: The Kafka topic (or the transport's destination).
    destination: str
    #: ``None``: no value (a Kafka tombstone).
    value: bytes | None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes | None]] = field(default_factory=list)


class DurableSender(Protocol):
    def send(self, messages: Sequence[DurableMessage], using: str | None = None) -> None:
        """Store ``messages`` in the current transaction of database ``using`` (the outbox's
        database when ``None``); they are sent after it commits, never if it rolls back."""
        ...

    def transport_names(self) -> Sequence[str]:
        """The transports messages may name."""
        ...


_senders: list[DurableSender] = []


def register_durable_sender(sender: DurableSender) -> None:
    """Called by the outbox app when it is ready; the latest registration wins."""
    _senders[:] = [sender]


def durable_sender() -> DurableSender:
    if not _senders:
        raise ImproperlyConfigured(
            "Durable (transactional) sends go through the outbox: add "
            "'django_messaging.outbox' to INSTALLED_APPS (pip install "
            "django-messaging-outbox), run migrate, and run ./manage.py publish."
        )
    return _senders[0]


def send_durably(messages: Sequence[DurableMessage], using: str | None = None) -> None:
    """Send ``messages`` if, and only if, the current transaction commits."""
    durable_sender().send(messages, using)
