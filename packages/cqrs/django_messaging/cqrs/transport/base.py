"""The interface every transport implements, and this thread's connection through the core
transport seam (:class:`Link`)."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django_messaging.core import tracing
from django_messaging.core import transports as core
from django_messaging.core.reconnect import Backoff
from django_messaging.cqrs.conf import settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PublishError
from django_messaging.cqrs.transport.wire import CONTENT_TYPE, routing_key

logger = logging.getLogger(__name__)

#: Seconds a confirm may take before the message counts as unconfirmed.
CONFIRM_TIMEOUT = 10.0


class BaseTransport:
    """Base class of transports (AMQP, Kombu, your own).

    ``produce`` must raise when the message was not accepted by the broker: the caller then
    stores it and sends it later. ``consume`` runs until stopped.

    ``pipelined``: its :meth:`relay_transport` reports confirms asynchronously, so that the
    ``"outbox"`` and ``"pipelined"`` modes hand messages to the publisher thread
    (:mod:`django_messaging.cqrs.controller.publisher`) rather than wait for each.
    """

    pipelined = False

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


def payload_message(payload: TransportPayload, key: Hashable) -> PayloadMessage:
    """``payload`` for the core seam (its one encoding as the body)."""
    return PayloadMessage(
        key=key,
        destination=routing_key(payload),
        body=payload.body(),
        # The save's trace context (a copy: the send span replaces it with its own).
        headers=dict(payload.trace) if payload.trace else {},
        content_type=CONTENT_TYPE,
        payload=payload,
    )


def _broker_target(transport: Any) -> tuple:
    return (transport, settings.URL, settings.HOST, settings.PORT, settings.USER, settings.EXCHANGE)


class Link(threading.local):
    """This thread's connection through a transport's core seam (:meth:`relay_transport`).

    Opened when first needed, and again after a fork, a change of the broker settings or a lost
    connection; after an open that failed, the same broker is not tried again before
    :data:`RECONNECT`'s delay (sends meanwhile fail at once, and their messages are stored to
    send later).
    """

    #: The back-off between failed opens.
    RECONNECT = Backoff(initial=0.2, cap=5.0)

    def __init__(self) -> None:
        self.transport: core.Transport | None = None
        self.target: tuple = ()
        self.pid = os.getpid()
        self.failures = 0
        self.retry_at = 0.0
        self.error = ""
        #: The broker settings of the failed open (other settings are tried at once).
        self.failed: tuple = ()

    def get(self, transport: Any) -> core.Transport:
        """The open core transport of ``transport`` (a :class:`BaseTransport` class); raises
        :class:`PublishError` when it cannot be opened now."""
        if self.pid != os.getpid():
            self._forget()
        target = _broker_target(transport)
        current = self.transport
        if current is not None and (self.target != target or not current.is_open()):
            self.close()
            current = None
        if current is None:
            now = time.monotonic()
            if now < self.retry_at and target == self.failed:
                raise PublishError(
                    f"not connected ({self.error}); trying again in {self.retry_at - now:.1f}s"
                )
            current = transport.relay_transport()
            try:
                current.open()
            except Exception as exc:
                self.failures += 1
                self.retry_at = now + self.RECONNECT.delay(self.failures)
                self.error, self.failed = f"{type(exc).__name__}: {exc}", target
                raise PublishError(f"cannot connect: {self.error}") from exc
            self.transport, self.target = current, target
            self.failures, self.retry_at = 0, 0.0
        return current

    def close(self) -> None:
        """Close this thread's connection (unconfirmed messages stay as they are)."""
        if self.pid != os.getpid():
            self._forget()
        current, self.transport = self.transport, None
        if current is not None:
            current.close()

    def _forget(self) -> None:
        # Forked: the parent's socket is not ours to use or close.
        forget = getattr(self.transport, "forget", None)
        if forget is not None:
            forget()
        self.transport, self.pid, self.failures, self.retry_at = None, os.getpid(), 0, 0.0


#: Every thread's connection (the publisher thread's and each sending thread's own).
LINK = Link()
_keys = itertools.count(1)


def publish_confirmed(transport: Any, payload: TransportPayload, describe: str) -> None:
    """Send ``payload`` through this thread's :data:`LINK` to ``transport`` and wait for its
    confirm; raise :class:`PublishError` without one. A connection lost while sending is
    opened again once and the message sent again."""
    message = payload_message(payload, next(_keys))
    last = ""
    for _attempt in range(2):
        seam = LINK.get(transport)
        if tracing.enabled and not _attempt:
            tracing.send_all(getattr(seam, "messaging_system", "rabbitmq"), [message])
        if seam.send([message]):
            last = seam.poll(0).error or "connection lost while sending"
            LINK.close()
            continue
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"{describe} did not confirm cqrs_id={payload.cqrs_id} pk={payload.pk}: "
                    f"no confirm within {CONFIRM_TIMEOUT:.0f}s"
                )
            polled = seam.poll(remaining)
            if message.key in polled.confirmed:
                logger.debug(
                    "published cqrs_id=%s pk=%s %s key=%s",
                    payload.cqrs_id,
                    payload.pk,
                    payload.signal_type.value,
                    message.destination,
                )
                return
            if message.key in polled.rejected:
                raise PublishError(
                    f"{describe} refused cqrs_id={payload.cqrs_id} pk={payload.pk} (nack)"
                )
            if polled.lost:
                LINK.close()
                raise PublishError(
                    f"{describe} did not confirm cqrs_id={payload.cqrs_id} pk={payload.pk}: "
                    f"{polled.error}"
                )
    raise PublishError(
        f"{describe} did not confirm cqrs_id={payload.cqrs_id} pk={payload.pk}: {last}"
    )
