"""What the relay needs from a broker, and nothing more.

A transport opens and closes a connection and sends a batch of messages, reporting each one
the broker *confirmed* (STOMP receipt, Kafka delivery report, ...) through ``on_confirmed`` as
soon as it knows, on the caller's thread. The relay marks exactly those rows sent; everything
else in the batch is retried. A Kafka transport implements these four methods and the relay
loop stays as it is.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutgoingMessage:
    key: Hashable  # what on_confirmed reports back (the outbox row id)
    destination: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass
class BatchResult:
    confirmed: int = 0
    unconfirmed: list[Hashable] = field(default_factory=list)
    error: str | None = None


class Transport(abc.ABC):
    @abc.abstractmethod
    def open(self) -> None:
        """Connect; raise on failure (the relay backs off and tries again)."""

    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @abc.abstractmethod
    def send_batch(
        self,
        messages: Sequence[OutgoingMessage],
        on_confirmed: Callable[[list[Hashable]], None],
        timeout: float,
    ) -> BatchResult:
        """Send durably; call ``on_confirmed(keys)`` for confirmed messages; return the rest."""

    @abc.abstractmethod
    def close(self) -> None: ...
