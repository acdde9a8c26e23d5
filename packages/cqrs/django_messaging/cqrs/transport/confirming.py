"""The core transport seam on pika, for the relay of stored master messages.

:class:`PikaTransport` writes messages to the master's exchange with publisher confirms, as the
publisher thread does (:mod:`.publisher`, whose connection set-up it shares), and reports the
confirms when polled: the core relay (:mod:`django_messaging.core.relay`) deletes exactly the
confirmed rows. A nack names the refused messages and keeps the connection; a broken connection
reports every unconfirmed message lost.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any

import pika

from django_messaging.core.transports import Confirmations, OutgoingMessage, Transport
from django_messaging.cqrs.conf import settings
from django_messaging.cqrs.transport import publisher
from django_messaging.cqrs.transport.amqp import AMQP_ERRORS
from django_messaging.cqrs.transport.wire import PERSISTENT

__all__ = ["PikaTransport"]

logger = logging.getLogger(__name__)


class PikaTransport(Transport):
    """One pika connection with publisher confirms; used from one thread."""

    def __init__(self) -> None:
        self.connection: Any = None
        self.channel: Any = None
        #: delivery tag -> message key, until the broker confirms or refuses it.
        self._tags: dict[int, Hashable] = {}
        self._next_tag = 0
        self._polled = Confirmations()

    def open(self) -> None:
        self.close()
        self.connection, self.channel = publisher.open_channel(self._on_confirm)
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
        for tag in publisher.confirmed_tags(method, self._tags):
            key = self._tags.pop(tag, None)
            if key is not None:
                keys.append(key)
        if refused:
            self._polled.error = "refused by the broker (nack)"

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        exchange = settings.EXCHANGE
        for index, message in enumerate(messages):
            self._next_tag += 1
            self._tags[self._next_tag] = message.key
            try:
                self.channel._impl.basic_publish(
                    exchange=exchange,
                    routing_key=message.destination,
                    body=message.body,
                    properties=PERSISTENT,
                    mandatory=True,
                )
            except AMQP_ERRORS as exc:
                self._tags.pop(self._next_tag, None)
                self._lost(exc)
                return [m.key for m in messages[index:]]
        try:
            publisher.coalesce_output(self.connection)
            self.channel._flush_output()
        except AMQP_ERRORS as exc:
            self._lost(exc)
        return []

    def poll(self, timeout: float) -> Confirmations:
        polled = self._polled
        if self._tags and not (polled.confirmed or polled.rejected or polled.lost):
            if self.is_open():
                try:
                    publisher.wait_on(
                        self.connection, lambda: bool(polled.confirmed or polled.rejected), timeout
                    )
                except AMQP_ERRORS as exc:
                    self._lost(exc)
            else:
                self._lost(None)
        self._polled = Confirmations()
        return polled

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
            logger.debug("closing the relay's connection: %s", exc)
