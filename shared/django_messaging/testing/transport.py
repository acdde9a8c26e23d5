"""The core transport seam in memory: every message recorded and confirmed at once."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from django_messaging.core.transports import Confirmations, OutgoingMessage, Transport
from django_messaging.testing.messages import MessageLog, SentMessage

__all__ = ["MemoryTransport"]


class MemoryTransport(Transport):
    """A :class:`~django_messaging.core.transports.Transport` whose broker is a
    :class:`MessageLog`: ``send`` records each message, the next ``poll`` confirms it.

    ``refuse`` names destinations the "broker" rejects (their messages are reported rejected,
    as a broker's error for a bad destination would), to test what a relay does then.
    ``decoder(message)`` returns how to decode a message's body (default: as is).
    """

    def __init__(
        self,
        log: MessageLog | None = None,
        *,
        decoder: Callable[[OutgoingMessage], Callable[[bytes | None], Any] | None] | None = None,
        refuse: Sequence[str] = (),
    ) -> None:
        self.log = log if log is not None else MessageLog()
        self.decoder = decoder
        self.refuse = set(refuse)
        self.opened = 0
        self._open = False
        self._confirmed: list[Hashable] = []
        self._rejected: list[Hashable] = []

    def open(self) -> None:
        self._open = True
        self.opened += 1

    def is_open(self) -> bool:
        return self._open

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        if not self._open:
            return [m.key for m in messages]
        for message in messages:
            if message.destination in self.refuse:
                self._rejected.append(message.key)
                continue
            self.log.record(self.sent_message(message))
            self._confirmed.append(message.key)
        return []

    def sent_message(self, message: OutgoingMessage) -> SentMessage:
        headers = dict(message.headers)
        if message.content_type and "content-type" not in headers:
            headers["content-type"] = message.content_type
        return SentMessage(
            destination=message.destination,
            body=message.body,
            header_items=tuple(headers.items()),
            key=message.ordering_key,
            extra={"key": message.key},
            decoder=self.decoder(message) if self.decoder is not None else None,
        )

    def poll(self, timeout: float) -> Confirmations:
        confirmed, self._confirmed = self._confirmed, []
        rejected, self._rejected = self._rejected, []
        if rejected:
            # A refusing broker closes the connection, as RabbitMQ does after an ERROR frame.
            self._open = False
            return Confirmations(
                confirmed=confirmed, lost=True, error="refused by the broker", rejected=rejected
            )
        return Confirmations(confirmed=confirmed)

    def close(self) -> None:
        self._open = False
