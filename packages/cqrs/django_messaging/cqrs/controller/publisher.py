"""The publisher thread: messages the caller does not wait for (the ``"outbox"`` and
``"pipelined"`` modes, see :mod:`django_messaging.cqrs.publishing`).

:func:`submit` hands a message to this process's publisher thread, which sends in order and in
bursts through the configured transport's core seam (:meth:`~.transport.BaseTransport.relay_transport`
on the thread's :data:`~.transport.base.LINK`: one connection set-up, one confirm tracking and
one back-off for every sender), polls its confirms (at most ``CQRS_CONFIRM_WINDOW`` messages
wait for one) and tells :mod:`.producer` what became of each message: a stored message's
confirmed row is deleted, anything refused, unconfirmed or unsendable is stored to send later.
:func:`wait_for_confirms` (also run at exit) waits for everything handed over so far.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Hashable, Iterable
from typing import Any

from django.db import connections

from django_messaging.core import tracing
from django_messaging.core.transports import Confirmations
from django_messaging.core.worker import release_connections
from django_messaging.cqrs.conf import master_setting
from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PublishError
from django_messaging.cqrs.transport import current_transport
from django_messaging.cqrs.transport.base import (
    CONFIRM_TIMEOUT,
    LINK,
    PayloadMessage,
    payload_message,
)

__all__ = ["CONFIRM_TIMEOUT", "submit", "wait_for_confirms"]

logger = logging.getLogger(__name__)

#: After the first message of a burst the publisher thread waits for more, LINGER seconds at a
#: time, and sends once a LINGER passed without a new one, BURST are waiting or STREAM_LINGER
#: passed in all. Under a stream of saves that makes fewer, larger bursts (the thread wakes and
#: takes the interpreter lock from the saving threads less often); a single save, or the last
#: of a stream, goes out after one quiet LINGER.
LINGER = 0.005
STREAM_LINGER = 0.05
#: Messages sent with one flush.
BURST = 200


class _InFlight(threading.local):
    """Messages a thread sent and the broker has not answered yet, by key, in the order sent."""

    def __init__(self) -> None:
        self.messages: dict[Hashable, PayloadMessage] = {}


_in_flight = _InFlight()
_keys = itertools.count(1)


def _payloads(messages: Iterable[PayloadMessage | None]) -> list[TransportPayload]:
    return [m.payload for m in messages if m is not None and m.payload is not None]


def submit(payload: TransportPayload) -> None:
    """Hand ``payload`` to the publisher thread and return at once."""
    _background.submit(payload)


def wait_for_confirms(timeout: float = CONFIRM_TIMEOUT) -> int:
    """Wait for outstanding confirms; what stays unconfirmed is stored to send later. Returns
    how many stayed."""
    left = _background.flush(timeout) if not _background.is_self() else 0
    left += _wait_own_confirms(timeout)  # what this thread sent itself
    producer.delete_confirmed(force=True)
    return left


# what the publisher thread tells the producer --------------------------------------------------
def _failed(payloads: list[TransportPayload], error: BaseException) -> None:
    for payload in payloads:
        try:
            producer.store(payload, payload.origin_db or "default", error)
        except Exception:
            # Its row, if it has one, stays: the relay builds the message again from it.
            logger.exception(
                "cqrs_id=%s pk=%s: not published (%s) and could not be stored either",
                payload.cqrs_id,
                payload.pk,
                error,
            )


def _published(payloads: list[TransportPayload]) -> None:
    """These went out: the broker takes messages again, so stored ones may follow."""
    for alias in {payload.origin_db or "default" for payload in payloads}:
        if producer.maybe_pending(alias):
            producer.flush_pending(alias, due_only=True)


def _settle(polled: Confirmations) -> list[PayloadMessage]:
    """Report what one poll learned; returns the messages a lost connection left unconfirmed."""
    in_flight = _in_flight.messages
    if polled.confirmed:
        confirmed = _payloads(in_flight.pop(key, None) for key in polled.confirmed)
        stored = [payload for payload in confirmed if payload.outbox_id is not None]
        if stored:
            producer.confirmed(stored)
    if polled.rejected:
        refused = _payloads(in_flight.pop(key, None) for key in polled.rejected)
        _failed(refused, PublishError(polled.error or "refused by the broker (nack)"))
    if not polled.lost:
        return []
    lost = list(in_flight.values())
    in_flight.clear()
    LINK.close()
    return lost


def _publish_burst(payloads: list[TransportPayload]) -> bool:
    """Send several messages with one flush; confirms come later.

    On a lost connection, what it left unconfirmed (earlier bursts' too) and the rest of the
    burst are sent once more on a new one; if that fails too they are stored. True when every
    message went.
    """
    todo: list[PayloadMessage] = []
    for index, payload in enumerate(payloads):
        try:
            todo.append(payload_message(payload, next(_keys)))
        except Exception as exc:  # a message that cannot be encoded: it and those after it
            _failed(payloads[index:], exc)
            break
    else:
        index = len(payloads)
    transport = current_transport()
    last: BaseException | None = None
    for _attempt in range(2):
        try:
            seam = LINK.get(transport)
        except PublishError as exc:
            last = exc
            break
        in_flight = _in_flight.messages
        for message in todo:
            in_flight[message.key] = message
        if tracing.enabled and not _attempt:
            tracing.send_all(getattr(seam, "messaging_system", "rabbitmq"), todo)
        unsent = seam.send(todo)
        polled = seam.poll(0)
        if unsent:
            polled.lost = True
            polled.error = polled.error or "connection lost while sending"
        lost = _settle(polled)
        if lost:
            last = PublishError(polled.error or "connection lost")
            todo = lost
            continue
        window = master_setting("CONFIRM_WINDOW")
        if window and len(in_flight) > window:
            _wait_confirms(CONFIRM_TIMEOUT, until=window // 2)
        return index == len(payloads)
    _failed(_payloads(todo), last or PublishError("not sent"))
    return False


def _wait_confirms(timeout: float, until: int = 0) -> None:
    """Poll confirms until at most ``until`` messages wait for one or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while len(_in_flight.messages) > until:
        remaining = deadline - time.monotonic()
        seam = LINK.transport
        if remaining <= 0 or seam is None:
            return
        lost = _settle(seam.poll(min(remaining, 1.0)))
        if lost:
            _failed(_payloads(lost), PublishError("connection lost"))
            return


def _wait_own_confirms(timeout: float) -> int:
    """Wait for the thread's unconfirmed messages; store those that stay. How many stayed."""
    if not _in_flight.messages:
        return 0
    _wait_confirms(timeout)
    left = _payloads(_in_flight.messages.values())
    _in_flight.messages.clear()
    if left:
        _failed(left, PublishError(f"no confirm within {timeout}s"))
    return len(left)


class _Background:
    """The publisher thread."""

    def __init__(self) -> None:
        self.pid = 0
        self.thread: threading.Thread | None = None
        self.queue: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()
        self.atexit = False

    def is_self(self) -> bool:
        return threading.current_thread() is self.thread

    def submit(self, payload: TransportPayload) -> None:
        with self.lock:
            if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
                self.pid = os.getpid()
                self.queue = queue.Queue(maxsize=master_setting("CONFIRM_WINDOW") or 0)
                self.thread = threading.Thread(target=self.run, name="cqrs-publisher", daemon=True)
                self.thread.start()
                if not self.atexit:
                    atexit.register(wait_for_confirms)
                    self.atexit = True
        self.queue.put(payload)

    def flush(self, timeout: float) -> int:
        """Wait until everything submitted so far is confirmed or stored."""
        if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
            return 0
        done = threading.Event()
        self.queue.put(done)
        if not done.wait(timeout + 5):
            logger.error("the CQRS publisher thread did not finish within %.0fs", timeout)
            return 1
        return 0

    def run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                self._settle(1.0)
                continue
            batch, marker = [], None
            if not isinstance(item, threading.Event) and LINGER:
                # What arrives meanwhile goes out in the same burst: one write and one poll
                # for many messages, and one wake-up of this thread rather than one per
                # message (each one takes the GIL from the application).
                self._linger()
            while True:
                if isinstance(item, threading.Event):
                    marker = item
                    break
                batch.append(item)
                if len(batch) >= BURST:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            try:
                if batch and _publish_burst(batch):
                    _published(batch)
                # Here rather than in the saving threads: no request waits for this DELETE.
                producer.delete_confirmed()
            except Exception:
                # Storing what could not be sent failed too (each message was logged).
                logger.exception(
                    "the CQRS publisher thread could not keep %d message(s)", len(batch)
                )
            finally:
                # Reports and deletes use this thread's own database connection: kept while
                # saves keep coming (unless it broke), closed once the thread is idle.
                release_connections(busy=True)
            if marker is not None:
                self._settle(CONFIRM_TIMEOUT)
                marker.set()

    def _linger(self) -> None:
        waiting = self.queue.qsize()
        for _ in range(round(STREAM_LINGER / LINGER)):
            if waiting >= BURST - 1:
                return
            time.sleep(LINGER)
            before, waiting = waiting, self.queue.qsize()
            if waiting == before:
                return

    @staticmethod
    def _settle(timeout: float) -> None:
        try:
            _wait_own_confirms(timeout)
            producer.delete_confirmed()  # when the application has stopped saving for a while
        except Exception:
            logger.exception("collecting publisher confirms failed")
        finally:
            connections.close_all()


_background = _Background()
