"""stomp.py listeners that hand frames to their owner (``*_LISTENER_CLASS``).

Subclass them to add logging or metrics; keep calling ``super()`` so receipts and messages
still reach the producer and the consumer. They run on stomp.py's receiver thread and never
touch the database.
"""

from __future__ import annotations

import logging
from typing import Any

import stomp

logger = logging.getLogger(__name__)


class BaseListener(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self, owner: Any) -> None:
        self.owner = owner

    def on_receipt(self, frame: Any) -> None:
        self.owner.on_receipt(frame.headers.get("receipt-id"))

    def on_error(self, frame: Any) -> None:
        logger.error(
            "broker error: %s %s", frame.headers.get("message", ""), _text(frame.body)[:500]
        )
        self.owner.on_broker_error(frame.headers, _text(frame.body))

    def on_disconnected(self) -> None:
        logger.info("disconnected from the broker")
        self.owner.on_disconnected()

    def on_heartbeat_timeout(self) -> None:
        logger.warning("broker heart-beat timed out")


class ProducerListener(BaseListener):
    """Receipts of SEND frames confirm outbox rows."""


class ConsumerListener(BaseListener):
    """MESSAGE frames are queued for the subscriber's worker thread."""

    def on_message(self, frame: Any) -> None:
        self.owner.on_message(frame)


def _text(body: Any) -> str:
    if isinstance(body, bytes | bytearray):
        return bytes(body).decode("utf-8", errors="replace")
    return str(body or "")
