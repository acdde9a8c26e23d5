"""The STOMP transport (RabbitMQ's STOMP plugin, stomp.py).

Every SEND is ``persistent:true`` and carries a ``receipt`` header; RabbitMQ sends the RECEIPT
once the message is confirmed (routed and, for durable queues, written to disk). Frames are
written back to back and their receipts collected as they come, so the relay never waits for
one round trip per message. One connection serves every batch until it breaks.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import uuid
from collections.abc import Hashable, Sequence
from typing import Any

import stomp
import stomp.listener

from django_messaging.core.transports import Confirmations, OutgoingMessage, Transport
from django_messaging.outbox import connection as stomp_connection
from django_messaging.outbox.conf import settings
from django_messaging.outbox.exceptions import TransportError

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
        self._error: str | None = None
        self._pending: dict[str, Hashable] = {}
        self._destinations: dict[str, str] = {}
        self._error_body = ""
        self._closed = threading.Event()  # the receiver saw the ERROR frame or the disconnect
        self._outgoing: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    # listener callbacks (receiver thread) ---------------------------------------------------
    def on_receipt(self, receipt_id: str | None) -> None:
        self._receipts.put(receipt_id)

    def on_broker_error(self, headers: dict[str, str], body: str) -> None:
        self._error = f"broker error: {headers.get('message', '')} {body[:300]}".strip()
        self._error_body = body
        self._broken = True
        self._closed.set()
        self._receipts.put(_LOST)

    def on_disconnected(self) -> None:
        self._closed.set()
        self._broken = True
        self._receipts.put(_LOST)

    def on_message(self, frame: Any) -> None:  # a producer connection subscribes to nothing
        pass

    # Transport -----------------------------------------------------------------------------
    def open(self) -> None:
        self.close()
        listener_class = settings.imported("PRODUCER_LISTENER_CLASS")
        connection = stomp_connection.factory_connection()
        connection.set_listener(self.listener_name, listener_class(self))
        self._receipts = queue.SimpleQueue()
        self._pending = {}
        self._destinations = {}
        self._error_body = ""
        self._closed = threading.Event()
        self._broken = False
        self._error = None
        try:
            stomp_connection.connect(connection, stopped=self.stopped)
        except Exception as exc:
            stomp_connection.disconnect(connection)
            raise TransportError(
                f"cannot connect to {stomp_connection.host_and_ports()}: {exc!r}"
            ) from exc
        self.connection = connection
        self._outgoing = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write,
            args=(connection, self._outgoing),
            name="outbox-stomp-writer",
            daemon=True,
        )
        self._writer.start()

    def is_open(self) -> bool:
        return self.connection is not None and not self._broken and self.connection.is_connected()

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._outgoing.put(None)
            writer.join(10)
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.remove_listener(self.listener_name)
            stomp_connection.disconnect(connection)

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        """Queue ``messages`` for the writer thread; a write failure shows up in :meth:`poll`.

        Writing on a separate thread lets the relay claim its next batch from the database
        while this one goes out.
        """
        if not self.is_open() or self._writer is None:
            return [m.key for m in messages]
        batch = []
        for message in messages:
            receipt = f"{self._prefix}-{next(self._counter)}"
            self._pending[receipt] = message.key
            self._destinations[receipt] = message.destination
            batch.append((receipt, message))
        self._outgoing.put(batch)
        return []

    def _write(self, connection: Any, outgoing: queue.SimpleQueue[Any]) -> None:
        frames = _FrameWriter.for_connection(connection)
        while True:
            batch = outgoing.get()
            if batch is None:
                return
            try:
                if frames is not None:
                    frames.write(batch)
                else:
                    for receipt, message in batch:
                        connection.send(
                            message.destination,
                            message.body,
                            content_type=message.content_type,
                            headers=_send_headers(message, receipt),
                        )
            except Exception as exc:
                logger.warning("send to %s failed: %r", batch[0][1].destination, exc)
                self._error = f"send failed: {exc!r}"
                self._broken = True
                self._receipts.put(_LOST)
                return

    def poll(self, timeout: float) -> Confirmations:
        result = Confirmations()
        try:
            items = [
                self._receipts.get(timeout=timeout) if timeout > 0 else self._receipts.get_nowait()
            ]
        except queue.Empty:
            if self._pending and not self.is_open():
                result.lost, result.error = True, "connection lost"
            return result
        while True:
            try:
                items.append(self._receipts.get_nowait())
            except queue.Empty:
                break
        for item in items:
            if item is _LOST:
                result.lost = True
                result.error = self._error or "connection lost before every receipt arrived"
            else:
                key = self._pending.pop(item, None)
                self._destinations.pop(item, None)
                if key is not None:
                    result.confirmed.append(key)
        if result.lost:
            # A failed write can be noticed before the receiver thread read the broker's ERROR
            # frame that explains it: give the receiver a moment.
            self._closed.wait(0.5)
            # RabbitMQ names a refused destination in the ERROR body (without a receipt-id):
            # blame the messages sent there, the others only lost their connection.
            if self._error_body:
                result.rejected = [
                    self._pending[receipt]
                    for receipt, destination in self._destinations.items()
                    if receipt in self._pending and f"'{destination}'" in self._error_body
                ]
            self._pending.clear()
            self._destinations.clear()
        return result


def _send_headers(message: OutgoingMessage, receipt: str) -> dict[str, str]:
    headers = dict(message.headers)
    headers["persistent"] = "true"
    headers["receipt"] = receipt
    return headers


class _FrameWriter:
    """Encodes SEND frames as stomp.py would and writes many of them with one ``sendall``.

    stomp.py writes each frame with its own system call under a lock; a batch of several
    hundred messages then costs several hundred writes. The frames are the same bytes (headers
    escaped by the connection's own protocol, ``content-length`` set), only coalesced. Used on
    plain blocking sockets; anything else (TLS, a custom connection class without these
    methods, a listener class with its own ``on_send``) goes through ``connection.send`` frame
    by frame.
    """

    chunk_bytes = 64 * 1024

    def __init__(self, transport: Any, escape: Any, content_length: bool) -> None:
        self.transport = transport
        self.escape = escape
        self.content_length = content_length

    @classmethod
    def for_connection(cls, connection: Any) -> _FrameWriter | None:
        transport = getattr(connection, "transport", None)
        escape = getattr(connection, "_escape_headers", None)
        if (
            transport is None
            or escape is None
            or getattr(transport, "blocking", None) is not True
            or not callable(getattr(transport, "send", None))
        ):
            return None
        # A listener that watches outgoing frames (``on_send``: metrics, logging) sees every
        # frame only when stomp.py writes them one by one.
        quiet = (stomp.ConnectionListener.on_send, stomp.listener.HeartbeatListener.on_send)
        listeners = getattr(transport, "listeners", None)
        if not isinstance(listeners, dict) or any(
            getattr(type(listener), "on_send", None) not in quiet for listener in listeners.values()
        ):
            return None
        return cls(transport, escape, bool(getattr(connection, "auto_content_length", True)))

    def write(self, batch: Sequence[tuple[str, OutgoingMessage]]) -> None:
        pending: list[bytes] = []
        size = 0
        for receipt, message in batch:
            headers = _send_headers(message, receipt)
            headers["destination"] = message.destination
            if message.content_type:
                headers["content-type"] = message.content_type
            body = message.body or b""
            if isinstance(body, str):
                body = body.encode()
            if self.content_length and body and "content-length" not in headers:
                headers["content-length"] = str(len(body))
            self.escape(headers)
            head = "".join([f"{key}:{value}\n" for key, value in headers.items()])
            frame = b"".join((b"SEND\n", head.encode(), b"\n", body, b"\x00"))
            pending.append(frame)
            size += len(frame)
            if size >= self.chunk_bytes:
                self.transport.send(b"".join(pending))
                pending, size = [], 0
        if pending:
            self.transport.send(b"".join(pending))
