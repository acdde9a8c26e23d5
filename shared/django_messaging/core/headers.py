"""Message headers of every transport (Kafka record headers, STOMP and AMQP headers): the one
place that turns header values into bytes or text and looks a key up.

Headers come as a mapping, as a list of ``(key, value)`` pairs, or as ``None`` (a Kafka record
without headers); every function here takes any of the three.

A key may repeat in a list of pairs, and which value counts differs by protocol:

- ``first_header``: the first value. Kafka record headers may repeat a key, and django-kafka's
  ``Header.get`` (whose behaviour ``django_messaging.kafka`` keeps at the same path) reads the
  first, so every module of the kafka package reads headers with it. STOMP 1.2 says the same
  of a repeated frame header: only the first entry counts.
- ``last_header``: the last value, the one ``dict(pairs)`` and :func:`header_dict` keep; for
  headers merged from layers where a later layer overrides an earlier one.
- ``header_values``: every value of a key, in order.

A mapping (an AMQP header table, a STOMP frame parsed into a dict) cannot repeat a key, so
``first_header`` and ``last_header`` give its one value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "Headers",
    "as_bytes",
    "as_text",
    "first_header",
    "header_dict",
    "header_items",
    "header_values",
    "last_header",
]

Headers = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


def as_bytes(value: Any, errors: str = "strict") -> bytes | None:
    """``value`` as bytes: bytes-like as is, anything else as its UTF-8 text; ``None`` stays.

    ``errors="replace"`` for text that may hold lone surrogates (an exception's message), which
    strict UTF-8 cannot encode.
    """
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", errors)


def as_text(value: Any) -> str | None:
    """``value`` as text: bytes-like decoded as UTF-8 (invalid bytes replaced); ``None`` stays."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _pairs(headers: Headers) -> Iterable[tuple[str, Any]]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def header_items(headers: Headers) -> list[tuple[str, Any]]:
    """Headers as a list of pairs, whatever shape they came in (order and repeats kept)."""
    return list(_pairs(headers))


def header_dict(headers: Headers, *, text: bool = False) -> dict[str, Any]:
    """Headers as a dict; for a repeated key the last value wins. ``text`` decodes bytes as UTF-8."""
    if text:
        return {key: as_text(value) for key, value in _pairs(headers)}
    return dict(_pairs(headers))


def first_header(headers: Headers, key: str) -> Any:
    """The first value of ``key`` in ``headers``, or ``None``."""
    for name, value in _pairs(headers):
        if name == key:
            return value
    return None


def last_header(headers: Headers, key: str) -> Any:
    """The last value of ``key`` in ``headers``, or ``None``."""
    found = None
    for name, value in _pairs(headers):
        if name == key:
            found = value
    return found


def header_values(headers: Headers, key: str) -> list[Any]:
    """Every value of ``key`` in ``headers``, in order (empty when it is absent)."""
    return [value for name, value in _pairs(headers) if name == key]
