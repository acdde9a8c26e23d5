"""A plain stomp.py subscriber the tests use to see what reached the broker."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import stomp


class Probe(stomp.ConnectionListener):  # type: ignore[misc]
    """Subscribes ``destination`` through its own queue and records every message."""

    def __init__(
        self,
        address: tuple[str, int],
        destination: str,
        queue: str | None = None,
        durable: bool = False,
    ):
        self.messages: list[tuple[dict[str, str], str]] = []
        self._lock = threading.Lock()
        self._receipt = threading.Event()
        self.connection = stomp.Connection12([address], heartbeats=(0, 0), vhost="/")
        self.connection.set_listener("probe", self)
        self.connection.connect("guest", "guest", wait=True)
        receipt = uuid.uuid4().hex
        headers = {"receipt": receipt, "durable": "false", "auto-delete": "true"}
        if durable:  # an existing durable queue (a dead-letter queue): declare it the same way
            headers.update({"durable": "true", "auto-delete": "false"})
        if queue:
            headers["x-queue-name"] = queue
        self._expected = receipt
        self.connection.subscribe(destination, "probe-1", ack="auto", headers=headers)
        if not self._receipt.wait(10):
            raise RuntimeError(f"no receipt for SUBSCRIBE {destination}")

    def on_receipt(self, frame: Any) -> None:
        if frame.headers.get("receipt-id") == self._expected:
            self._receipt.set()

    def on_message(self, frame: Any) -> None:
        with self._lock:
            self.messages.append((dict(frame.headers), frame.body))

    def ids(self, header: str = "dop-msg-id") -> list[str]:
        with self._lock:
            return [h.get(header, "") for h, _ in self.messages]

    def close(self) -> None:
        try:
            self.connection.disconnect()
        except Exception:
            pass


def send_raw(
    address: tuple[str, int], destination: str, body: str | bytes, headers: dict[str, str]
) -> None:
    """SEND one frame and wait for its receipt, as another producer would."""
    done = threading.Event()

    class Listener(stomp.ConnectionListener):  # type: ignore[misc]
        def on_receipt(self, frame: Any) -> None:
            done.set()

    conn = stomp.Connection12([address], heartbeats=(0, 0), vhost="/")
    conn.set_listener("l", Listener())
    conn.connect("guest", "guest", wait=True)
    conn.send(destination, body, headers={**headers, "receipt": "r1", "persistent": "true"})
    if not done.wait(10):
        raise RuntimeError("no receipt for SEND")
    conn.disconnect()
