"""Rows that carry a message exactly (bytes, record key, headers): what a transactional Kafka
produce stores, through the core durable-send seam (:mod:`django_messaging.core.durable`).

Such a row has its value in ``payload`` (``NULL``: a tombstone) and, in ``headers``, one key
``"raw"``: ``{"key": <base64 or null>, "headers": [[name, <base64 or null>], ...]}``. Its ``key``
column is the record key as text when it is short UTF-8 without NUL, else ``sha256:<hex>`` of
it (an Avro key starts with a zero byte): rows with the same record key are still sent in order.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import router

from django_messaging.core.durable import DurableMessage
from django_messaging.outbox.headers import RAW
from django_messaging.outbox.transports import named

__all__ = ["RAW", "OutboxSender", "ordering_key", "raw_headers", "raw_parts"]


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else base64.b64decode(value)


def ordering_key(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        text = key.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and len(text) <= 255 and "\x00" not in text:  # no NUL in a text column
        return text
    return "sha256:" + hashlib.sha256(key).hexdigest()


def raw_headers(key: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> dict[str, Any]:
    return {RAW: {"key": _b64(key), "headers": [[n, _b64(v)] for n, v in headers]}}


def raw_parts(headers: Any) -> tuple[bytes | None, list[tuple[str, bytes | None]]] | None:
    """(record key, headers) of a raw row; ``None`` for an ordinary row."""
    if not isinstance(headers, dict) or RAW not in headers:
        return None
    raw = headers[RAW]
    return _bytes(raw.get("key")), [(str(n), _bytes(v)) for n, v in raw.get("headers", [])]


class OutboxSender:
    """The outbox as the core's durable sender: one ``Published`` row per message, written in
    the caller's transaction."""

    def send(self, messages: Sequence[DurableMessage], using: str | None = None) -> None:
        from django_messaging.outbox.decorators import NewRow, insert_outbox_rows
        from django_messaging.outbox.models import Published

        rows = []
        for message in messages:
            backend = named.configured().get(message.transport, {}).get("BACKEND")
            if backend is None:
                raise ImproperlyConfigured(named.unknown(message.transport))
            if backend in ("stomp", "amqp"):
                raise ImproperlyConfigured(
                    f"the outbox transport {message.transport!r} is a {backend} transport; "
                    "messages with exact bytes, key and headers need a kafka one"
                )
            rows.append(
                NewRow(
                    destination=message.destination,
                    version=None,
                    body=None,
                    transport=message.transport,
                    key=ordering_key(message.key),
                    payload=message.value,
                    headers=raw_headers(message.key, message.headers),
                )
            )
        if rows:
            insert_outbox_rows(using or router.db_for_write(Published), rows)

    def transport_names(self) -> Sequence[str]:
        return list(named.configured())
