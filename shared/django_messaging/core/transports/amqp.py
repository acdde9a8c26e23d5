"""The AMQP 0-9-1 transport (RabbitMQ, pika), for the relay and any package that sends through
the core seam.

Each :class:`~django_messaging.core.transports.OutgoingMessage` is published to the transport's
``exchange`` with its ``destination`` as routing key, persistent (``delivery_mode=2``), with its
``headers``, its ``content_type`` and its confirmation key as ``message_id``. The channel is in
publisher-confirm mode: a message is confirmed by the broker's ``basic.ack``; a ``basic.nack``
rejects it. Every message is published ``mandatory``: one that no queue is bound to receive is
returned by the broker, and rejected with an error naming the exchange and the routing key
rather than confirmed, so it is never counted as sent while it went nowhere.

Messages are written back to back and their confirms collected as they come (no round trip per
message). pika is imported when a transport opens: install it with
``pip install "django-messaging[pika]"``.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import Any

from django_messaging.core.exceptions import MessagingError
from django_messaging.core.redact import redact_url
from django_messaging.core.transports.base import Confirmations, OutgoingMessage, Transport

__all__ = ["AmqpTransport"]

logger = logging.getLogger(__name__)


class AmqpTransportError(MessagingError):
    """RabbitMQ cannot be reached or refused the connection."""


class AmqpTransport(Transport):
    """Publishes to one exchange with publisher confirms and ``mandatory`` set."""

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/%2F",
        *,
        exchange: str = "",
        mandatory: bool = True,
        heartbeat: int = 60,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.exchange = exchange
        self.mandatory = mandatory
        self.heartbeat = heartbeat
        self.timeout = timeout
        self._connection: Any = None
        self._channel: Any = None
        self._next_tag = 0
        #: delivery tag -> confirmation key, until the broker acks or nacks it.
        self._unconfirmed: dict[int, Hashable] = {}
        self._by_message_id: dict[str, Hashable] = {}
        self._returned: dict[Hashable, str] = {}
        self._confirmed: list[Hashable] = []
        self._rejected: list[Hashable] = []
        self._errors: list[str] = []
        self._lost: str | None = None

    def __repr__(self) -> str:
        return f"<AmqpTransport {redact_url(self.url)} exchange={self.exchange!r}>"

    # broker callbacks (pika's I/O, this thread) ---------------------------------------------
    def _on_confirm(self, frame: Any) -> None:
        import pika

        method = frame.method
        if method.multiple:
            tags = [t for t in self._unconfirmed if t <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        nack = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            key = self._unconfirmed.pop(tag, None)
            if key is None:
                continue
            self._by_message_id.pop(str(key), None)
            returned = self._returned.pop(key, None)
            if returned is not None:
                self._rejected.append(key)
                self._errors.append(returned)
            elif nack:
                self._rejected.append(key)
                self._errors.append(
                    f"RabbitMQ refused (nack) a message to exchange {self.exchange!r}"
                )
            else:
                self._confirmed.append(key)

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        key = self._by_message_id.get(str(properties.message_id))
        error = (
            f"unroutable: no queue is bound to exchange {method.exchange!r} with routing key "
            f"{method.routing_key!r} ({method.reply_code} {method.reply_text})"
        )
        # Reported with the message's confirm as a rejection; the relay logs it as an error.
        logger.debug("RabbitMQ returned message %s: %s", properties.message_id, error)
        if key is not None:
            self._returned[key] = error

    # Transport -----------------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        import pika

        parameters = pika.URLParameters(self.url)
        parameters.heartbeat = self.heartbeat
        parameters.blocked_connection_timeout = self.timeout
        parameters.socket_timeout = self.timeout
        try:
            connection = pika.BlockingConnection(parameters)
            channel = connection.channel()
            # The channel underneath the blocking adapter: confirms and returns are delivered
            # to callbacks while messages go out, instead of one round trip per message.
            channel._impl.confirm_delivery(ack_nack_callback=self._on_confirm)
            channel._impl.add_on_return_callback(self._on_return)
            connection.process_data_events(time_limit=0)
        except pika.exceptions.AMQPError as exc:
            raise AmqpTransportError(f"cannot connect to {redact_url(self.url)}: {exc!r}") from exc
        self._connection, self._channel = connection, channel
        self._next_tag = 0
        self._unconfirmed, self._by_message_id, self._returned = {}, {}, {}
        self._lost = None

    def is_open(self) -> bool:
        return (
            self._connection is not None
            and self._lost is None
            and self._connection.is_open
            and self._channel.is_open
        )

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:
                logger.debug("error while closing an AMQP connection", exc_info=True)

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        import pika

        if not self.is_open():
            return [m.key for m in messages]
        channel = self._channel._impl
        sent = 0
        try:
            for message in messages:
                self._next_tag += 1
                self._unconfirmed[self._next_tag] = message.key
                self._by_message_id[str(message.key)] = message.key
                channel.basic_publish(
                    self.exchange,
                    message.destination,
                    message.body,
                    pika.BasicProperties(
                        delivery_mode=2,
                        content_type=message.content_type,
                        headers=dict(message.headers) or None,
                        message_id=str(message.key),
                    ),
                    mandatory=self.mandatory,
                )
                sent += 1
            self._channel._flush_output()
        except pika.exceptions.AMQPError as exc:
            self._lost = f"connection lost while sending: {exc!r}"
            logger.warning("AMQP send failed: %r", exc)
            return [m.key for m in messages[sent:]]
        return []

    def poll(self, timeout: float) -> Confirmations:
        import pika

        result = Confirmations()
        if self._connection is not None and self._lost is None and not self._ready():
            try:
                self._wait(timeout)
            except pika.exceptions.AMQPError as exc:
                self._lost = f"connection lost: {exc!r}"
        result.confirmed, self._confirmed = self._confirmed, []
        result.rejected, self._rejected = self._rejected, []
        errors, self._errors = self._errors, []
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            result.error = errors[0] + more
        if self._lost is not None or (self._connection is not None and not self.is_open()):
            result.lost = True
            result.error = result.error or self._lost or "connection lost"
            if self._channel is not None and not self._channel.is_open:
                # A channel the broker closed (a missing exchange...): every message on it
                # was refused for that reason.
                reason = getattr(self._channel._impl, "_closing_reason", None)
                result.error = f"RabbitMQ closed the channel: {reason or result.error}"
                result.rejected.extend(self._unconfirmed.values())
            self._unconfirmed = {}
        return result

    def _ready(self) -> bool:
        return bool(self._confirmed or self._rejected)

    def _wait(self, timeout: float) -> None:
        """Run pika's I/O until a confirmation arrives or ``timeout`` passes."""
        from pika.adapters.blocking_connection import _IoloopTimerContext

        connection = self._connection
        if timeout <= 0:
            connection.process_data_events(time_limit=0)
            return
        with _IoloopTimerContext(timeout, connection._impl) as timer:
            connection._flush_output(timer.is_ready, self._ready)
