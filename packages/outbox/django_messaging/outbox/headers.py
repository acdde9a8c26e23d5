"""Headers the relay puts on every outbox message (``GENERATE_HEADERS``)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

#: The header that carries the outbox row id; subscribers use it as the idempotency key.
MESSAGE_ID_HEADER = "dop-msg-id"
#: The header that carries the correlation id (see ``correlation``).
CORRELATION_ID_HEADER = "dop-correlation-id"
#: The one key of the stored headers of a row that carries a Kafka record exactly (see
#: ``durable``).
RAW = "raw"


def generate_headers(message: Any) -> dict[str, str]:
    """``dop-msg-id`` (the ``Published`` id, the same on every resend), the destination, the
    row's class name and the send time in ISO 8601."""
    return {
        MESSAGE_ID_HEADER: str(message.id),
        "dop-msg-destination": message.destination,
        "dop-msg-type": type(message).__name__,
        "dop-msg-sent-time": timezone.now().isoformat(),
    }
