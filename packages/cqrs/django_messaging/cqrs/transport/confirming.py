"""The core transport seam on pika: every message a CQRS master sends to RabbitMQ goes here.

:class:`PikaTransport` is the one connection set-up (the master's exchange declared, publisher
confirms, unroutable messages logged) and the one confirm tracking of the master: the publisher
thread (:mod:`django_messaging.cqrs.controller.publisher`), :meth:`.RabbitMQTransport.produce`
(through this thread's :class:`~.base.Link`) and the relay of stored messages
(:mod:`django_messaging.cqrs.relay`) all send through it and poll its confirms. A nack names the
refused messages and keeps the connection; a broken connection reports every unconfirmed
message lost.

On the wire a message is published to the master's exchange with its ``destination`` as routing
key, ``mandatory``, with the django-cqrs properties (:data:`PERSISTENT`) and its body as
given: a message no replica queue is bound to receive is logged, not refused (nobody listens).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import pika
from pika.adapters.blocking_connection import _IoloopTimerContext

from django_messaging.core.transports import Confirmations, OutgoingMessage, Transport
from django_messaging.cqrs.conf import settings
from django_messaging.cqrs.transport.amqp import AMQP_ERRORS, connection_parameters
from django_messaging.cqrs.transport.wire import properties

__all__ = ["PikaTransport"]

logger = logging.getLogger(__name__)

#: The master's message properties (immutable, so one instance serves every publish).
PERSISTENT = properties()


def _log_unroutable(channel: Any, method: Any, props: Any, body: bytes) -> None:
    logger.info(
        "no replica queue is bound to %r on %r: nobody receives this message",
        method.routing_key,
        method.exchange,
    )


class PikaTransport(Transport):
    """One pika connection with publisher confirms; used from one thread."""

    def __init__(self) -> None:
        self.connection: Any = None
        self.channel: Any = None
        self.exchange = ""
        #: delivery tag -> message key, until the broker confirms or refuses it.
        self._tags: dict[int, Hashable] = {}
        self._next_tag = 0
        self._polled = Confirmations()

    def __repr__(self) -> str:
        return f"<PikaTransport exchange={self.exchange!r}>"

    def open(self) -> None:
        self.close()
        connection = pika.BlockingConnection(connection_parameters())
        try:
            channel = connection.channel()
            channel.exchange_declare(
                exchange=settings.EXCHANGE, exchange_type="topic", durable=True
            )
            # Confirms handled here rather than by BlockingChannel, so that a sender can either
            # wait for its own or let them arrive while later messages go out.
            channel._impl.confirm_delivery(ack_nack_callback=self._on_confirm)
            channel._impl.add_on_return_callback(_log_unroutable)
            connection.process_data_events(time_limit=0)
        except BaseException:
            self.connection = connection
            self.close()
            raise
        self.connection, self.channel, self.exchange = connection, channel, settings.EXCHANGE
        self._tags, self._next_tag, self._polled = {}, 0, Confirmations()

    def is_open(self) -> bool:
        return bool(
            self.connection is not None
            and self.connection.is_open
            and self.channel is not None
            and self.channel.is_open
        )

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        refused = isinstance(method, pika.spec.Basic.Nack)
        keys = self._polled.rejected if refused else self._polled.confirmed
        if method.multiple:
            tags = [tag for tag in self._tags if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            key = self._tags.pop(tag, None)
            if key is not None:
                keys.append(key)
        if refused:
            self._polled.error = "refused by the broker (nack)"

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        if not self.is_open():
            self._lost(None)
            return [m.key for m in messages]
        publish = self.channel._impl.basic_publish
        exchange = self.exchange
        for index, message in enumerate(messages):
            # Registered before sending: the confirm can arrive while the output is flushed.
            self._next_tag += 1
            self._tags[self._next_tag] = message.key
            try:
                publish(
                    exchange=exchange,
                    routing_key=message.destination,
                    body=message.body,
                    # Headers only carry a trace context: the django-cqrs properties else.
                    properties=properties(headers=message.headers)
                    if message.headers
                    else PERSISTENT,
                    mandatory=True,
                )
            except AMQP_ERRORS as exc:
                self._tags.pop(self._next_tag, None)
                self._lost(exc)
                return [m.key for m in messages[index:]]
        try:
            coalesce_output(self.connection)
            self.channel._flush_output()
        except AMQP_ERRORS as exc:
            self._lost(exc)
        return []

    def poll(self, timeout: float) -> Confirmations:
        polled = self._polled
        if self._tags and not (polled.confirmed or polled.rejected or polled.lost):
            if not self.is_open():
                self._lost(None)
            elif timeout > 0:
                try:
                    wait_on(
                        self.connection, lambda: bool(polled.confirmed or polled.rejected), timeout
                    )
                except AMQP_ERRORS as exc:
                    self._lost(exc)
        self._polled = Confirmations()
        return polled

    def unconfirmed(self) -> int:
        """How many messages sent on this connection wait for the broker's answer."""
        return len(self._tags)

    def _lost(self, exc: BaseException | None) -> None:
        """Nothing still unconfirmed will be confirmed on this connection."""
        self._polled.lost = True
        self._polled.error = f"{type(exc).__name__}: {exc}" if exc else "connection lost"
        self._tags.clear()
        self.close()

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is None:
            return
        try:
            if connection.is_open:
                connection.close()
        except AMQP_ERRORS as exc:
            logger.debug("closing a publishing connection: %s", exc)

    def forget(self) -> None:
        """Drop the connection without closing it: after a fork, the parent's socket is not
        ours to use or close."""
        self.connection = self.channel = None
        self._tags.clear()


def coalesce_output(connection: Any) -> None:
    """Join what a burst wrote into one buffer: pika sends every frame (three per message) with
    a ``send()`` of its own, which costs the sending thread a system call and the GIL each
    time."""
    transport = getattr(connection._impl, "_transport", None)
    buffers = getattr(transport, "_tx_buffers", None)
    if buffers is not None and len(buffers) > 1:
        joined = b"".join(buffers)
        buffers.clear()
        buffers.append(joined)


def wait_on(connection: Any, condition: Callable[[], bool], timeout: float) -> None:
    """Run ``connection``'s I/O until ``condition()`` holds or ``timeout`` seconds passed."""
    if condition():
        return
    # Run pika's I/O loop until the condition holds or the timer fires (returning as soon as a
    # confirm arrives; process_data_events would sleep out its whole time limit).
    with _IoloopTimerContext(timeout, connection._impl) as timer:
        connection._flush_output(timer.is_ready, condition)
