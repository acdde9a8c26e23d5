"""What a relay needs from a broker, and nothing more.

A transport opens and closes a connection, writes messages (:meth:`Transport.send`) and
reports which of them the broker *confirmed* (STOMP receipt, AMQP publisher confirm, Kafka
delivery report, ...) when polled (:meth:`Transport.poll`). The relay
(:mod:`django_messaging.core.relay`) keeps a window of unconfirmed messages in flight, marks
exactly the confirmed rows sent and retries the rest, whatever the broker.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutgoingMessage:
    """One message for the broker, in terms every broker has."""

    #: What :meth:`Transport.poll` reports back once the broker confirmed it (a row's id).
    key: Hashable
    #: STOMP destination, AMQP exchange or routing key, Kafka topic: the transport's address.
    destination: str
    #: ``None``: no value at all (a Kafka tombstone).
    body: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    #: Messages with the same ordering key must reach the broker in the order sent (a Kafka
    #: transport uses it as the record key); ``None``: no order asked.
    ordering_key: str | None = None
    #: The record key exactly (Kafka); ``None``: ``ordering_key`` encoded as UTF-8.
    raw_key: bytes | None = None
    #: Headers exactly, in order, names repeated as needed (Kafka); ``None``: ``headers``.
    raw_headers: Sequence[tuple[str, bytes | None]] | None = None


@dataclass
class Confirmations:
    """What one :meth:`Transport.poll` learned."""

    confirmed: list[Hashable] = field(default_factory=list)
    #: The connection broke: whatever is still unconfirmed will never be confirmed on it.
    lost: bool = False
    error: str | None = None
    #: Messages the broker refused (a bad destination, an unroutable message, a failed
    #: delivery...): their fault, not the connection's. Without ``lost`` the connection goes
    #: on; ``error`` says why.
    rejected: list[Hashable] = field(default_factory=list)


@dataclass
class BatchResult:
    confirmed: int = 0
    unconfirmed: list[Hashable] = field(default_factory=list)
    error: str | None = None


class Transport(abc.ABC):
    """A connection to one broker: ``open``, ``send`` asking for confirmation, ``poll`` the
    confirmations, ``close``. Used from one thread."""

    #: Set by the relay that runs the transport: true once its worker was asked to stop. An
    #: ``open`` that waits for a broker which answers nothing may end its wait then.
    stopped: Callable[[], bool] | None = None

    @abc.abstractmethod
    def open(self) -> None:
        """Connect; raise on failure (the caller backs off and tries again)."""

    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @abc.abstractmethod
    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        """Write ``messages`` durably, asking for confirmation; return the keys that could not
        be written (the connection broke)."""

    @abc.abstractmethod
    def poll(self, timeout: float) -> Confirmations:
        """Keys confirmed since the last poll, waiting up to ``timeout`` for the first one."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def send_batch(
        self,
        messages: Sequence[OutgoingMessage],
        on_confirmed: Callable[[list[Hashable]], None],
        timeout: float,
    ) -> BatchResult:
        """Send and wait for every confirmation (or ``timeout``); used for direct sends."""
        result = BatchResult()
        pending = {m.key for m in messages}
        unsent = self.send(messages)
        pending -= set(unsent)
        rejected: list[Hashable] = []
        if unsent:
            result.error = "connection lost while sending"
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.error = result.error or f"no confirmation within {timeout}s"
                break
            polled = self.poll(min(remaining, 0.5))
            keys = [k for k in polled.confirmed if k in pending]
            if keys:
                pending.difference_update(keys)
                result.confirmed += len(keys)
                on_confirmed(keys)
            refused = [k for k in polled.rejected if k in pending]
            if refused:
                pending.difference_update(refused)
                rejected.extend(refused)
                result.error = result.error or polled.error or "refused by the broker"
            if polled.lost:
                result.error = result.error or polled.error or "connection lost"
                break
        result.unconfirmed = list(pending) + list(unsent) + rejected
        return result
