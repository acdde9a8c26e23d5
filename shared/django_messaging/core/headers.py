"""Message header helpers shared by the transports (Kafka record headers, STOMP and AMQP headers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Headers = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


def as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def header_items(headers: Headers) -> list[tuple[str, Any]]:
    """Headers as a list of pairs, whatever shape they came in (order and repeats kept)."""
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def header_dict(headers: Headers, *, text: bool = False) -> dict[str, Any]:
    """Headers as a dict; for a repeated key the last value wins. ``text`` decodes bytes as UTF-8."""
    convert = as_text if text else (lambda v: v)
    return {key: convert(value) for key, value in header_items(headers)}


def last_header(headers: Headers, key: str) -> Any:
    """The last value of ``key`` in ``headers``, or ``None``."""
    found = None
    for name, value in header_items(headers):
        if name == key:
            found = value
    return found
