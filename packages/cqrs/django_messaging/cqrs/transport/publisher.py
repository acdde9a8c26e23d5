"""Publishing over pika with publisher confirms: one connection per thread, and a publisher
thread for messages the caller does not wait for.

:func:`publish` sends one message and waits for its confirm (raising
:class:`~django_messaging.cqrs.exceptions.PublishError` without one). :func:`submit` hands a
message to this process's publisher thread, which sends in order and in bursts, collects the
confirms (at most ``CQRS_CONFIRM_WINDOW`` messages wait for one) and reports what became of
each message to the :class:`~django_messaging.cqrs.transport.base.Confirmations` handed in with
it. :func:`wait_for_confirms` (also run at exit) waits for everything handed over so far.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pika
from django.db import connections
from pika.adapters.blocking_connection import _IoloopTimerContext

from django_messaging.cqrs.conf import master_setting, settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PublishError
from django_messaging.cqrs.transport.amqp import AMQP_ERRORS, connection_parameters, describe_broker
from django_messaging.cqrs.transport.base import Confirmations
from django_messaging.cqrs.transport.wire import PERSISTENT, routing_key

logger = logging.getLogger(__name__)

#: Seconds a confirm may take before the message counts as unconfirmed.
CONFIRM_TIMEOUT = 10.0
#: Seconds the publisher thread waits for more messages after the first of a burst.
LINGER = 0.01
#: Messages sent with one flush.
BURST = 200


def confirmed_tags(method: Any, unconfirmed: Iterable[int]) -> list[int]:
    """The delivery tags an ack or nack frame's ``method`` answers."""
    if method.multiple:
        return [tag for tag in unconfirmed if tag <= method.delivery_tag]
    return [method.delivery_tag]


class _State(threading.local):
    """One publishing connection per thread, with its unconfirmed messages."""

    connection: Any = None
    channel: Any = None
    pid: int = 0
    next_tag: int = 0
    #: The settings the connection was opened with (a change opens a new one).
    target: tuple = ()

    def __init__(self) -> None:
        #: delivery tag -> payload, until the broker confirms it.
        self.unconfirmed: dict[int, TransportPayload] = {}
        #: payloads the broker refused (nack), to be reported as failed.
        self.refused: list[TransportPayload] = []
        #: stored payloads the broker confirmed, to be reported as confirmed.
        self.acked: list[TransportPayload] = []

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        refused = isinstance(method, pika.spec.Basic.Nack)
        for tag in confirmed_tags(method, self.unconfirmed):
            payload = self.unconfirmed.pop(tag, None)
            if payload is None:
                continue
            if refused:
                self.refused.append(payload)
            elif payload.outbox_id is not None:
                self.acked.append(payload)


_state = _State()
#: Where outcomes go: the Confirmations handed in with the latest :func:`submit`.
_report: list[Confirmations] = []
_atexit_registered = [False]


def _report_failed(payloads: list[TransportPayload], reason: BaseException) -> None:
    if not payloads:
        return
    if not _report:
        logger.error(
            "%d CQRS message(s) not confirmed (%s) and nobody to keep them", len(payloads), reason
        )
        return
    _report[0].failed(payloads, reason)


def _report_acked() -> None:
    if _state.acked and _report:
        acked, _state.acked = _state.acked, []
        _report[0].confirmed(acked)


def _report_refused() -> None:
    if _state.refused:
        refused, _state.refused = _state.refused, []
        _report_failed(refused, PublishError("refused by the broker (nack)"))


def _log_unroutable(channel: Any, method: Any, props: Any, body: bytes) -> None:
    logger.info(
        "no replica queue is bound to %r on %r: nobody receives this message",
        method.routing_key,
        method.exchange,
    )


def open_channel(on_confirm: Callable[[Any], None]) -> tuple[Any, Any]:
    """A new connection and channel to the master's exchange (declared), with publisher
    confirms going to ``on_confirm`` (an ack or nack frame) and unroutable messages logged."""
    connection = pika.BlockingConnection(connection_parameters())
    channel = connection.channel()
    channel.exchange_declare(exchange=settings.EXCHANGE, exchange_type="topic", durable=True)
    # Confirms handled here rather than by BlockingChannel, so that a message can either
    # wait for its own or let them arrive while later ones are sent.
    channel._impl.confirm_delivery(ack_nack_callback=on_confirm)
    channel._impl.add_on_return_callback(_log_unroutable)
    connection.process_data_events(time_limit=0)
    return connection, channel


def _channel() -> Any:
    state = _state
    if state.pid != os.getpid():
        # Forked: the parent's socket is not ours to use or close.
        state.connection = state.channel = None
        state.unconfirmed, state.refused, state.acked = {}, [], []
        state.pid = os.getpid()
    target = (settings.URL, settings.HOST, settings.PORT, settings.USER, settings.EXCHANGE)
    if state.connection is not None and state.target != target:
        _connection_lost(PublishError("the broker settings changed"))
    if (
        state.connection is None
        or not state.connection.is_open
        or state.channel is None
        or not state.channel.is_open
    ):
        close()
        connection, channel = open_channel(state.on_confirm)
        state.connection, state.channel, state.next_tag = connection, channel, 0
        state.target = target
        if not _atexit_registered[0]:
            atexit.register(wait_for_confirms)
            _atexit_registered[0] = True
    return state.channel


def publish(payload: TransportPayload) -> None:
    """Publish ``payload`` and wait for its confirm; raise PublishError without one."""
    key = routing_key(payload)
    body = payload.body()
    state = _state
    last: BaseException | None = None
    for _attempt in range(2):
        try:
            channel = _channel()
            # Registered before sending: the confirm can arrive while basic_publish flushes.
            state.next_tag += 1
            tag = state.next_tag
            state.unconfirmed[tag] = payload
            channel.basic_publish(
                exchange=settings.EXCHANGE,
                routing_key=key,
                body=body,
                properties=PERSISTENT,
                mandatory=True,
            )
        except AMQP_ERRORS as exc:
            last = exc
            state.unconfirmed.pop(state.next_tag, None)  # this one is retried below
            _connection_lost(exc)
            continue
        _wait(lambda tag=tag: tag not in state.unconfirmed, CONFIRM_TIMEOUT)
        if tag in state.unconfirmed:
            state.unconfirmed.pop(tag)
            last = PublishError(f"no confirm within {CONFIRM_TIMEOUT:.0f}s")
            break
        if payload in state.refused:
            state.refused.remove(payload)
            raise PublishError(
                f"RabbitMQ at {describe_broker()} refused cqrs_id={payload.cqrs_id} "
                f"pk={payload.pk} (nack)"
            )
        _report_acked()
        _report_refused()
        logger.debug(
            "published cqrs_id=%s pk=%s %s key=%s",
            payload.cqrs_id,
            payload.pk,
            payload.signal_type.value,
            key,
        )
        return
    raise PublishError(
        f"RabbitMQ at {describe_broker()} did not confirm cqrs_id={payload.cqrs_id} "
        f"pk={payload.pk}: {type(last).__name__}: {last}"
    ) from last


def _publish_burst(payloads: list[TransportPayload]) -> bool:
    """Send several messages with one flush; confirms come later.

    On a lost connection, what it left unconfirmed and the rest of the burst are sent once
    more on a new one; if that fails too they are reported failed. True when every message went.
    """
    state = _state
    todo, last = payloads, None
    for _attempt in range(2):
        sent = 0
        try:
            channel = _channel()
            for payload in todo:
                body = payload.body()
                state.next_tag += 1
                state.unconfirmed[state.next_tag] = payload
                sent += 1
                channel._impl.basic_publish(
                    exchange=settings.EXCHANGE,
                    routing_key=routing_key(payload),
                    body=body,
                    properties=PERSISTENT,
                    mandatory=True,
                )
            coalesce_output(state.connection)
            channel._flush_output()
            window = master_setting("CONFIRM_WINDOW")
            if len(state.unconfirmed) > window:
                _wait(lambda w=window: len(state.unconfirmed) <= w // 2, CONFIRM_TIMEOUT)
        except AMQP_ERRORS as exc:
            last = exc
            # Unconfirmed on the lost connection (earlier bursts' too), then the rest.
            todo = [*state.unconfirmed.values(), *todo[sent:]]
            state.unconfirmed = {}
            close()
            continue
        except Exception as exc:  # a message that cannot be encoded
            _report_failed(todo[sent:], exc)
            return False
        _report_acked()
        _report_refused()
        return True
    assert last is not None
    _report_failed(todo, last)
    return False


def coalesce_output(connection: Any) -> None:
    """Join what a burst wrote into one buffer: pika sends every frame (three per message) with
    a ``send()`` of its own, which costs this thread a system call and the GIL each time."""
    transport = getattr(connection._impl, "_transport", None)
    buffers = getattr(transport, "_tx_buffers", None)
    if buffers is not None and len(buffers) > 1:
        joined = b"".join(buffers)
        buffers.clear()
        buffers.append(joined)


def _wait(condition: Any, timeout: float) -> None:
    wait_on(_state.connection, condition, timeout)


def wait_on(connection: Any, condition: Callable[[], bool], timeout: float) -> None:
    """Run ``connection``'s I/O until ``condition()`` holds or ``timeout`` seconds passed."""
    if condition():
        return
    # Run pika's I/O loop until the condition holds or the timer fires (returning as soon as a
    # confirm arrives; process_data_events would sleep out its whole time limit).
    with _IoloopTimerContext(timeout, connection._impl) as timer:
        connection._flush_output(timer.is_ready, condition)


def _connection_lost(exc: BaseException) -> None:
    """Messages sent but not confirmed on a broken connection are reported failed."""
    state = _state
    pending, state.unconfirmed = list(state.unconfirmed.values()), {}
    close()
    _report_failed(pending, exc)


def _wait_own_confirms(timeout: float) -> int:
    state = _state
    if state.pid == os.getpid():
        _report_acked()
    if state.pid != os.getpid() or not state.unconfirmed or state.connection is None:
        return 0
    try:
        _wait(lambda: not state.unconfirmed, timeout)
    except AMQP_ERRORS as exc:
        _connection_lost(exc)
        return 0
    _report_acked()
    left = list(state.unconfirmed.values())
    state.unconfirmed = {}
    _report_failed(left, PublishError(f"no confirm within {timeout}s"))
    _report_refused()
    return len(left)


def wait_for_confirms(timeout: float = CONFIRM_TIMEOUT) -> int:
    """Wait for outstanding confirms; what stays unconfirmed is reported failed. Returns how
    many stayed."""
    left = _background.flush(timeout) if not _background.is_self() else 0
    left += _wait_own_confirms(timeout)
    if _report:
        _report[0].settle(force=True)
    return left


def close() -> None:
    """Close this thread's publishing connection (unconfirmed messages stay as they are)."""
    state = _state
    connection, state.connection, state.channel = state.connection, None, None
    if connection is not None and state.pid == os.getpid():
        try:
            if connection.is_open:
                connection.close()
        except AMQP_ERRORS:
            pass


def submit(payload: TransportPayload, report: Confirmations) -> None:
    """Hand ``payload`` to the publisher thread; what becomes of it goes to ``report``."""
    if not _report or _report[0] is not report:
        _report[:] = [report]
    _background.submit(payload)


class _Background:
    """The publisher thread."""

    def __init__(self) -> None:
        self.pid = 0
        self.thread: threading.Thread | None = None
        self.queue: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()

    def is_self(self) -> bool:
        return threading.current_thread() is self.thread

    def submit(self, payload: TransportPayload) -> None:
        with self.lock:
            if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
                self.pid = os.getpid()
                self.queue = queue.Queue(maxsize=master_setting("CONFIRM_WINDOW") or 0)
                self.thread = threading.Thread(target=self.run, name="cqrs-publisher", daemon=True)
                self.thread.start()
        self.queue.put(payload)

    def flush(self, timeout: float) -> int:
        """Wait until everything submitted so far is confirmed or reported failed."""
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
                time.sleep(LINGER)
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
                if batch and _publish_burst(batch) and _report:
                    _report[0].published(batch)
            except Exception:
                # Keeping what could not be sent failed too (the report logged each message).
                logger.exception(
                    "the CQRS publisher thread could not keep %d message(s)", len(batch)
                )
            finally:
                # Reports use this thread's own database connection: never keep it open.
                connections.close_all()
            if marker is not None:
                self._settle(CONFIRM_TIMEOUT)
                marker.set()

    @staticmethod
    def _settle(timeout: float) -> None:
        try:
            _wait_own_confirms(timeout)
            if _report:
                _report[0].settle()  # when the application has stopped saving for a while
        except Exception:
            logger.exception("collecting publisher confirms failed")
        finally:
            connections.close_all()


_background = _Background()
