"""What a test captured: messages as the broker would have received them, and assertions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django_messaging.core.headers import Headers, as_text, header_items

__all__ = ["MessageLog", "SentMessage"]

_ANY: Any = object()


@dataclass(frozen=True)
class SentMessage:
    """One message as it would have reached the broker.

    ``body`` and ``key`` are what went on the wire; :attr:`value` is the body decoded the way
    the receiving side decodes it (the package that captured the message says how).
    """

    destination: str
    body: bytes | None
    #: Every header in order, values as sent (bytes for Kafka, text for STOMP and AMQP).
    header_items: tuple[tuple[str, Any], ...] = ()
    key: Any = None
    #: Package-specific details (Kafka partition and offset, the outbox row id, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)
    decoder: Callable[[bytes | None], Any] | None = field(default=None, compare=False, repr=False)

    @property
    def headers(self) -> dict[str, str | None]:
        """The headers as text; for a repeated header the last value wins."""
        return {name: as_text(value) for name, value in self.header_items}

    @property
    def value(self) -> Any:
        """The body decoded as the consumer decodes it."""
        if self.decoder is None:
            return self.body
        return self.decoder(self.body)

    def matches(
        self,
        destination: str | None = None,
        *,
        key: Any = _ANY,
        headers: Mapping[str, Any] | None = None,
        value: Any = _ANY,
        body: Any = _ANY,
    ) -> bool:
        """Whether this message has every property given (headers: at least these)."""
        if destination is not None and self.destination != destination:
            return False
        if key is not _ANY and not _same_key(self.key, key):
            return False
        if headers:
            mine = self.headers
            for name, expected in headers.items():
                if name not in mine or mine[name] != as_text(expected):
                    return False
        if body is not _ANY and self.body != body:
            return False
        if value is _ANY:
            return True
        try:
            return bool(self.value == value)
        except Exception:  # an undecodable body matches no value
            return False


def _same_key(actual: Any, expected: Any) -> bool:
    if actual == expected:
        return True
    return isinstance(actual, bytes | bytearray) and as_text(actual) == expected


def headers_tuple(headers: Headers | None) -> tuple[tuple[str, Any], ...]:
    return tuple(header_items(headers)) if headers else ()


class MessageLog:
    """The messages a test captured, oldest first, with assertions that say what was seen."""

    def __init__(self) -> None:
        self._messages: list[SentMessage] = []

    def record(self, message: SentMessage) -> None:
        self._messages.append(message)

    def clear(self) -> None:
        self._messages.clear()

    def __iter__(self) -> Iterator[SentMessage]:
        return iter(list(self._messages))

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, index: int) -> SentMessage:
        return self._messages[index]

    def to(self, destination: str) -> list[SentMessage]:
        """The messages sent to ``destination``."""
        return [m for m in self._messages if m.destination == destination]

    def values(self, destination: str | None = None) -> list[Any]:
        """The decoded bodies (of the messages to ``destination``)."""
        chosen = self._messages if destination is None else self.to(destination)
        return [m.value for m in chosen]

    def filter(self, destination: str | None = None, **expected: Any) -> list[SentMessage]:
        """The messages that match (see :meth:`SentMessage.matches`)."""
        return [m for m in self._messages if m.matches(destination, **expected)]

    def assert_sent(
        self, destination: str | None = None, *, count: int | None = None, **expected: Any
    ) -> SentMessage:
        """Assert that a message matching ``expected`` (``key``, ``headers``, ``value``,
        ``body``) was sent to ``destination`` (``count`` times when given); return the last."""
        found = self.filter(destination, **expected)
        if not found or (count is not None and len(found) != count):
            wanted = "a message" if count is None else f"{count} message(s)"
            raise AssertionError(
                f"expected {wanted} to {destination or 'any destination'} matching "
                f"{_describe(expected)}; found {len(found)}. Sent: {self._describe()}"
            )
        return found[-1]

    def assert_not_sent(self, destination: str | None = None, **expected: Any) -> None:
        """Assert that no message matching ``expected`` was sent to ``destination``."""
        found = self.filter(destination, **expected)
        if found:
            raise AssertionError(
                f"expected no message to {destination or 'any destination'} matching "
                f"{_describe(expected)}; found {len(found)}: {found}"
            )

    def _describe(self) -> str:
        if not self._messages:
            return "nothing"
        return "; ".join(
            f"{m.destination} key={m.key!r} value={_safe_value(m)!r}" for m in self._messages
        )


def _safe_value(message: SentMessage) -> Any:
    try:
        return message.value
    except Exception as exc:  # an undecodable body is still worth showing
        return f"<undecodable: {exc!r}> {message.body!r}"


def _describe(expected: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in expected.items()) or "anything"
