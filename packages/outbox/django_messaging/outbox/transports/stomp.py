"""The STOMP transport (RabbitMQ's STOMP plugin, stomp.py).

Every SEND is ``persistent:true`` and carries a ``receipt`` header; RabbitMQ sends the RECEIPT
once the message is confirmed (routed and, for durable queues, written to disk). Frames of a
batch are written back to back and their receipts collected as they come, so the relay never
waits for one round trip per message. One connection serves every batch until it breaks.
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from django_messaging.core.imports import import_from_setting
from django_messaging.outbox import factories
from django_messaging.outbox.conf import settings
from django_messaging.outbox.exceptions import TransportError
from django_messaging.outbox.transports.base import BatchResult, OutgoingMessage, Transport

logger = logging.getLogger(__name__)

_LOST = object()  # put on the receipt queue when the connection drops or the broker errors


class StompTransport(Transport):
    listener_name = "django-messaging-outbox-producer"

    def __init__(self) -> None:
        self.connection: Any = None
        self._receipts: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._prefix = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        self._broken = False

    # listener callbacks (receiver thread) ---------------------------------------------------
    def on_receipt(self, receipt_id: str | None) -> None:
        self._receipts.put(receipt_id)

    def on_broker_error(self, headers: dict[str, str], body: str) -> None:
        self._broken = True
        self._receipts.put(_LOST)

    def on_disconnected(self) -> None:
        self._broken = True
        self._receipts.put(_LOST)

    def on_message(self, frame: Any) -> None:  # a producer connection subscribes to nothing
        pass

    # Transport -----------------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        listener_class = import_from_setting(
            settings.DEFAULT_PRODUCER_LISTENER_CLASS,
            "MESSAGING['OUTBOX']['DEFAULT_PRODUCER_LISTENER_CLASS']",
        )
        connection = factories.factory_connection()
        connection.set_listener(self.listener_name, listener_class(self))
        self._receipts = queue.SimpleQueue()
        self._broken = False
        try:
            factories.connect(connection)
        except Exception as exc:
            _quiet_disconnect(connection)
            raise TransportError(
                f"cannot connect to {factories.host_and_ports()}: {exc!r}"
            ) from exc
        self.connection = connection

    def is_open(self) -> bool:
        return self.connection is not None and not self._broken and self.connection.is_connected()

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.remove_listener(self.listener_name)
            _quiet_disconnect(connection)

    def send_batch(
        self,
        messages: Sequence[OutgoingMessage],
        on_confirmed: Callable[[list[Hashable]], None],
        timeout: float,
    ) -> BatchResult:
        result = BatchResult()
        if not self.is_open():
            result.unconfirmed = [m.key for m in messages]
            result.error = "not connected"
            return result
        pending: dict[str, Hashable] = {}
        unsent: list[Hashable] = []
        for index, message in enumerate(messages):
            receipt = f"{self._prefix}-{next(self._counter)}"
            headers = dict(message.headers)
            headers["persistent"] = "true"
            headers["receipt"] = receipt
            pending[receipt] = message.key
            try:
                self.connection.send(
                    message.destination,
                    message.body,
                    content_type=message.content_type,
                    headers=headers,
                )
            except Exception as exc:  # socket gone mid-batch
                self._broken = True
                result.error = f"send failed: {exc!r}"
                del pending[receipt]
                unsent = [m.key for m in messages[index:]]
                break
        deadline = time.monotonic() + timeout
        lost = False
        while pending and not lost:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.error = result.error or f"no receipt within {timeout}s"
                break
            try:
                items = [self._receipts.get(timeout=min(remaining, 0.5))]
            except queue.Empty:
                if not self.is_open():
                    lost = True
                continue
            while True:
                try:
                    items.append(self._receipts.get_nowait())
                except queue.Empty:
                    break
            keys = []
            for item in items:
                if item is _LOST:
                    lost = True
                elif item in pending:
                    keys.append(pending.pop(item))
            if keys:
                result.confirmed += len(keys)
                on_confirmed(keys)
        if lost:
            result.error = result.error or "connection lost before every receipt arrived"
        result.unconfirmed = list(pending.values()) + unsent
        return result


def _quiet_disconnect(connection: Any) -> None:
    try:
        if connection.is_connected():
            connection.disconnect()
        else:
            connection.transport.stop()
    except Exception:
        logger.debug("error while closing a stomp connection", exc_info=True)
