"""RabbitMQ transport on pika, wire-compatible with django-cqrs.

Topology (the same names django-cqrs uses, so both libraries can share a broker):

- one durable topic exchange (``exchange``, default ``cqrs``);
- per replica service a durable queue ``queue`` bound with ``<CQRS_ID>`` (broadcasts) and
  ``cqrs.<queue>.<CQRS_ID>`` (direct syncs), and its dead letter queue ``dead_letter_<queue>``
  bound with ``cqrs.dead_letter_<queue>.<CQRS_ID>``;
- additionally, per retry delay, a queue ``<queue>.delay.<ms>`` with ``x-message-ttl`` whose
  expired messages the broker moves back into ``queue``: a failed message waits in the broker,
  never unacknowledged in a worker's memory.

Publishing uses one connection per thread (re-opened after a fork or a broken connection),
publisher confirms and ``mandatory``; :meth:`RabbitMQTransport.produce` raises
:class:`~django_messaging.cqrs.exceptions.PublishError` when the broker did not confirm, and the
master then stores the message to send it later.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Any, NamedTuple

import pika
from pika import exceptions as pika_exceptions
from pika.adapters.blocking_connection import _IoloopTimerContext

from django_messaging.core.redact import redact_url
from django_messaging.core.serializers import get_serializer
from django_messaging.core.worker import Worker, run_worker
from django_messaging.cqrs.conf import dead_letter_queue, replica_setting, settings
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PayloadError, PublishError
from django_messaging.cqrs.transport import outage, reasons
from django_messaging.cqrs.transport.base import BaseTransport

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain"
QUEUE_HEADER = "x-cqrs-queue"
ERROR_HEADER = "x-cqrs-error"
AMQP_ERRORS = (
    pika_exceptions.AMQPError,
    pika_exceptions.ChannelError,
    pika_exceptions.ReentrancyError,
    OSError,
    AssertionError,
)


def connection_parameters() -> pika.ConnectionParameters:
    """pika parameters from ``url`` (amqp/amqps, vhost kept) or the host/port/user/password keys."""
    url = settings.url
    if url:
        params: pika.ConnectionParameters = pika.URLParameters(url)
    else:
        params = pika.ConnectionParameters(
            host=settings.host or "localhost",
            port=settings.port or 5672,
            credentials=pika.PlainCredentials(
                settings.user or "guest", settings.password or "guest"
            ),
        )
    params.heartbeat = settings.heartbeat
    params.blocked_connection_timeout = 10
    params.client_properties = {"connection_name": f"django-messaging-cqrs pid {os.getpid()}"}
    for key, value in settings.connection_options.items():
        setattr(params, key, value)
    return params


def describe_broker() -> str:
    url = settings.url
    if url:
        return redact_url(url)
    return f"{settings.host or 'localhost'}:{settings.port or 5672}"


def routing_key(payload: TransportPayload) -> str:
    if payload.is_dead_letter:
        return f"cqrs.{dead_letter_queue()}.{payload.cqrs_id}"
    if payload.is_requeue:
        return f"cqrs.{settings.queue}.{payload.cqrs_id}"
    if payload.signal_type is SignalType.SYNC and payload.queue:
        return f"cqrs.{payload.queue}.{payload.cqrs_id}"
    return payload.cqrs_id


def encode(payload: TransportPayload) -> bytes:
    return get_serializer("json").dumps(payload.to_dict())


def properties(**extra: Any) -> pika.BasicProperties:
    return pika.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=2, **extra)


#: The master's message properties (immutable, so one instance serves every publish).
PERSISTENT = properties()


class _PublisherState(threading.local):
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
        #: payloads the broker refused (nack), to be stored for later.
        self.refused: list[TransportPayload] = []
        #: stored payloads the broker confirmed, whose rows can go.
        self.acked: list[TransportPayload] = []

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.multiple:
            tags = [t for t in self.unconfirmed if t <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        refused = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            payload = self.unconfirmed.pop(tag, None)
            if payload is None:
                continue
            if refused:
                self.refused.append(payload)
            elif payload.outbox_id is not None:
                self.acked.append(payload)


_publisher = _PublisherState()
_atexit_registered = False


def _log_unroutable(channel: Any, method: Any, props: Any, body: bytes) -> None:
    logger.info(
        "no replica queue is bound to %r on %r: nobody receives this message",
        method.routing_key,
        method.exchange,
    )


def _store_later(payloads: list[TransportPayload], reason: BaseException) -> None:
    from django_messaging.cqrs.controller.producer import store

    for payload in payloads:
        store(payload, payload.origin_db or "default", reason)


def _hand_over_acked() -> None:
    from django_messaging.cqrs.controller.producer import confirmed

    state = _publisher
    if state.acked:
        acked, state.acked = state.acked, []
        confirmed(acked)


class Delivery(NamedTuple):
    """A received message, whatever the client library."""

    routing_key: str
    headers: dict[str, Any]
    body: bytes
    tag: Any


def delay_queue_arguments(milliseconds: int) -> dict[str, Any]:
    """A queue whose messages the broker moves back into the service queue after the TTL."""
    return {
        "x-message-ttl": milliseconds,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": settings.queue,
    }


def declare_replica_topology(channel: Any, cqrs_ids: list[str]) -> None:
    exchange = settings.exchange
    queue = settings.queue
    dlq = dead_letter_queue()
    channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    channel.queue_declare(queue=queue, durable=True)
    channel.queue_declare(queue=dlq, durable=True)
    for cqrs_id in cqrs_ids:
        channel.queue_bind(queue=queue, exchange=exchange, routing_key=cqrs_id)
        channel.queue_bind(queue=queue, exchange=exchange, routing_key=f"cqrs.{queue}.{cqrs_id}")
        channel.queue_bind(queue=dlq, exchange=exchange, routing_key=f"cqrs.{dlq}.{cqrs_id}")


class RabbitMQTransport(BaseTransport):
    """Publish and consume over RabbitMQ (AMQP 0-9-1) with pika."""

    @classmethod
    def _channel(cls) -> Any:
        global _atexit_registered
        state = _publisher
        if state.pid != os.getpid():
            # Forked: the parent's socket is not ours to use or close.
            state.connection = state.channel = None
            state.unconfirmed, state.refused, state.acked = {}, [], []
            state.pid = os.getpid()
        target = (settings.url, settings.host, settings.port, settings.user, settings.exchange)
        if state.connection is not None and state.target != target:
            cls._connection_lost(PublishError("the broker settings changed"))
        if (
            state.connection is None
            or not state.connection.is_open
            or state.channel is None
            or not state.channel.is_open
        ):
            cls.clean_connection()
            connection = pika.BlockingConnection(connection_parameters())
            channel = connection.channel()
            channel.exchange_declare(
                exchange=settings.exchange, exchange_type="topic", durable=True
            )
            # Confirms handled here rather than by BlockingChannel, so that CQRS_PUBLISH_CONFIRMS
            # can either wait for each one or let them arrive while the application goes on.
            channel._impl.confirm_delivery(ack_nack_callback=state.on_confirm)
            channel._impl.add_on_return_callback(_log_unroutable)
            connection.process_data_events(time_limit=0)
            state.connection, state.channel, state.next_tag = connection, channel, 0
            state.target = target
            if not _atexit_registered:
                atexit.register(cls.wait_for_confirms)
                _atexit_registered = True
        return state.channel

    @classmethod
    def produce(cls, payload: TransportPayload) -> None:
        """Publish ``payload`` with a publisher confirm.

        ``master.CQRS_PUBLISH_CONFIRMS = "each"`` (default) waits for the broker's confirm and
        raises PublishError without one. ``"pipelined"`` hands the message to this process's
        publisher thread and returns; that thread publishes in order, collects the confirms
        (at most ``CQRS_CONFIRM_WINDOW`` messages wait for it) and stores a refused, unconfirmed
        or unsendable message to send later. ``wait_for_confirms()`` (also run at exit) waits
        for everything handed over so far.
        """
        from django_messaging.cqrs.conf import master_setting

        if master_setting("CQRS_PUBLISH_CONFIRMS") == "pipelined" and not _background.is_self():
            _background.submit(payload)
            return
        cls._publish(payload)

    @classmethod
    def publish_unconfirmed(cls, payload: TransportPayload) -> None:
        """Send a message already stored in the database; do not wait for its confirm.

        The default mode (``CQRS_PUBLISH_CONFIRMS = "outbox"``): the message goes to this
        process's publisher thread, which sends in order and in bursts and collects the
        confirms. A confirmed message's row is deleted; a refused or unconfirmed one stays for
        the relay, as does every row of a process that dies first. At most
        ``CQRS_CONFIRM_WINDOW`` messages wait to be sent or confirmed before a save waits.
        """
        _background.submit(payload)

    @classmethod
    def _publish(cls, payload: TransportPayload) -> None:
        from django_messaging.cqrs.conf import master_setting

        key = routing_key(payload)
        body = encode(payload)
        state = _publisher
        last: BaseException | None = None
        for _attempt in range(2):
            try:
                channel = cls._channel()
                # Registered before sending: the confirm can arrive while basic_publish flushes.
                state.next_tag += 1
                tag = state.next_tag
                state.unconfirmed[tag] = payload
                channel.basic_publish(
                    exchange=settings.exchange,
                    routing_key=key,
                    body=body,
                    properties=properties(),
                    mandatory=True,
                )
            except AMQP_ERRORS as exc:
                last = exc
                if state.unconfirmed:
                    state.unconfirmed.pop(state.next_tag, None)  # this one is retried below
                cls._connection_lost(exc)
                continue
            if master_setting("CQRS_PUBLISH_CONFIRMS") != "pipelined":
                cls._wait(lambda tag=tag: tag not in state.unconfirmed, 10.0)
                if tag in state.unconfirmed:
                    state.unconfirmed.pop(tag)
                    last = PublishError("no confirm within 10s")
                    break
                if payload in state.refused:
                    state.refused.remove(payload)
                    raise PublishError(
                        f"RabbitMQ at {describe_broker()} refused cqrs_id={payload.cqrs_id} "
                        f"pk={payload.pk} (nack)"
                    )
            else:
                # Confirms are read while later messages are sent; wait only past the window.
                window = master_setting("CQRS_CONFIRM_WINDOW")
                if len(state.unconfirmed) > window:
                    cls._wait(lambda w=window: len(state.unconfirmed) <= w // 2, 10.0)
            _hand_over_acked()
            cls._store_refused()
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

    @classmethod
    def _publish_burst(cls, payloads: list[TransportPayload]) -> bool:
        """Send several messages with one flush (publisher thread); confirms come later.

        On a lost connection, what it left unconfirmed and the rest of the burst are sent once
        more on a new one; if that fails too they are stored. True when every message went.
        """
        from django_messaging.cqrs.conf import master_setting

        state = _publisher
        todo, last = payloads, None
        for _attempt in range(2):
            sent = 0
            try:
                channel = cls._channel()
                for payload in todo:
                    body = encode(payload)
                    state.next_tag += 1
                    state.unconfirmed[state.next_tag] = payload
                    sent += 1
                    channel._impl.basic_publish(
                        exchange=settings.exchange,
                        routing_key=routing_key(payload),
                        body=body,
                        properties=PERSISTENT,
                        mandatory=True,
                    )
                channel._flush_output()
                window = master_setting("CQRS_CONFIRM_WINDOW")
                if len(state.unconfirmed) > window:
                    cls._wait(lambda w=window: len(state.unconfirmed) <= w // 2, 10.0)
            except AMQP_ERRORS as exc:
                last = exc
                # Unconfirmed on the lost connection (earlier bursts' too), then the rest.
                todo = [*state.unconfirmed.values(), *todo[sent:]]
                state.unconfirmed = {}
                cls.clean_connection()
                continue
            except Exception as exc:  # a message that cannot be encoded
                _store_later(todo[sent:], exc)
                return False
            _hand_over_acked()
            cls._store_refused()
            return True
        assert last is not None
        _store_later(todo, last)
        return False

    @classmethod
    def _wait(cls, condition: Any, timeout: float) -> None:
        connection = _publisher.connection
        if condition():
            return
        # Run pika's I/O loop until the condition holds or the timer fires (returning as soon
        # as a confirm arrives; process_data_events would sleep out its whole time limit).
        with _IoloopTimerContext(timeout, connection._impl) as timer:
            connection._flush_output(timer.is_ready, condition)

    @classmethod
    def _store_refused(cls) -> None:
        state = _publisher
        if state.refused:
            refused, state.refused = state.refused, []
            _store_later(refused, PublishError("refused by the broker (nack)"))

    @classmethod
    def _connection_lost(cls, exc: BaseException) -> None:
        """Messages sent but not confirmed on a broken connection are stored to send later."""
        state = _publisher
        pending, state.unconfirmed = list(state.unconfirmed.values()), {}
        cls.clean_connection()
        if pending:
            _store_later(pending, exc)

    @classmethod
    def wait_for_confirms(cls, timeout: float = 10.0) -> int:
        """Wait for outstanding confirms; store what stays unconfirmed. Returns how many stayed."""
        from django_messaging.cqrs.controller.producer import delete_confirmed

        left = _background.flush(timeout) if not _background.is_self() else 0
        left += cls._wait_own_confirms(timeout)
        delete_confirmed(force=True)
        return left

    @classmethod
    def _wait_own_confirms(cls, timeout: float) -> int:
        state = _publisher
        if state.pid == os.getpid():
            _hand_over_acked()
        if state.pid != os.getpid() or not state.unconfirmed or state.connection is None:
            return 0
        try:
            cls._wait(lambda: not state.unconfirmed, timeout)
        except AMQP_ERRORS as exc:
            cls._connection_lost(exc)
            return 0
        _hand_over_acked()
        left = list(state.unconfirmed.values())
        state.unconfirmed = {}
        if left:
            _store_later(left, PublishError(f"no confirm within {timeout}s"))
        cls._store_refused()
        return len(left)

    @classmethod
    def clean_connection(cls) -> None:
        state = _publisher
        connection, state.connection, state.channel = state.connection, None, None
        if connection is not None and state.pid == os.getpid():
            try:
                if connection.is_open:
                    connection.close()
            except AMQP_ERRORS:
                pass

    @classmethod
    def consume(cls, cqrs_ids: list[str] | None = None) -> None:
        """Consume until SIGTERM/SIGINT (the core worker runtime)."""
        run_worker(cls.consumer_worker(cqrs_ids))

    @classmethod
    def consumer_worker(cls, cqrs_ids: list[str] | None = None) -> Worker:
        """One consumer for ``cqrs_consume`` (which runs ``-w`` of them)."""
        return RabbitMQConsumer(cqrs_ids)


#: Seconds the publisher thread waits for more messages after the first of a burst.
LINGER = 0.01


class _BackgroundPublisher:
    """The thread that publishes for ``CQRS_PUBLISH_CONFIRMS = "outbox"`` and ``"pipelined"``."""

    def __init__(self) -> None:
        self.pid = 0
        self.thread: threading.Thread | None = None
        self.queue: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()

    def is_self(self) -> bool:
        return threading.current_thread() is self.thread

    def submit(self, payload: TransportPayload) -> None:
        from django_messaging.cqrs.conf import master_setting

        with self.lock:
            if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
                self.pid = os.getpid()
                self.queue = queue.Queue(maxsize=master_setting("CQRS_CONFIRM_WINDOW") or 0)
                self.thread = threading.Thread(target=self.run, name="cqrs-publisher", daemon=True)
                self.thread.start()
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
        from django.db import connections

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
                if len(batch) >= 200:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            try:
                if batch and RabbitMQTransport._publish_burst(batch):
                    _flush_stored({p.origin_db or "default" for p in batch})
            except Exception:
                # Storing what could not be sent failed too (store() logged each body).
                logger.exception(
                    "the CQRS publisher thread could not store %d message(s)", len(batch)
                )
            finally:
                # Storing opens this thread's own database connection: never keep it open.
                connections.close_all()
            if marker is not None:
                self._settle(10.0)
                marker.set()

    @staticmethod
    def _settle(timeout: float) -> None:
        from django.db import connections

        from django_messaging.cqrs.controller.producer import delete_confirmed

        try:
            RabbitMQTransport._wait_own_confirms(timeout)
            delete_confirmed()  # when the application has stopped saving for a while
        except Exception:
            logger.exception("collecting publisher confirms failed")
        finally:
            connections.close_all()


def _flush_stored(aliases: set[str]) -> None:
    """After messages went out: send what earlier failures stored (see producer.flush_pending)."""
    from django_messaging.cqrs.controller import producer

    for alias in aliases:
        if producer.maybe_pending(alias):
            producer.flush_pending(alias)


_background = _BackgroundPublisher()


class RabbitMQConsumer(Worker):
    """Fetches batches from the service queue, applies them, retries or dead-letters failures."""

    name = "cqrs_consume"

    def __init__(self, cqrs_ids: list[str] | None = None) -> None:
        self.cqrs_ids = cqrs_ids
        self.connection: Any = None
        self.channel: Any = None
        self.publish_channel: Any = None
        self.buffer: list[Delivery] = []
        self.next_connect = 0.0
        self.failures = 0
        self.delay_queues: set[str] = set()
        self.next_housekeeping = 0.0
        self.outage = outage.DatabaseOutage()

    # -- connection ----------------------------------------------------------------------
    def start(self) -> None:
        if not settings.queue:
            from django_messaging.core.exceptions import ConfigurationError

            raise ConfigurationError("MESSAGING['CQRS']['queue'] must be set to consume")
        self._connect()

    def _cqrs_ids(self) -> list[str]:
        from django_messaging.cqrs.registries import ReplicaRegistry

        return list(self.cqrs_ids or ReplicaRegistry.models)

    def _prefetch(self) -> int:
        return settings.consumer_prefetch_count or 2 * replica_setting("CQRS_BATCH_SIZE")

    def _connect(self) -> bool:
        try:
            connection = pika.BlockingConnection(connection_parameters())
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self._prefetch())
            declare_replica_topology(channel, self._cqrs_ids())
            publish_channel = connection.channel()
            publish_channel.confirm_delivery()
            self.buffer.clear()  # deliveries may arrive from here on: keep them
            channel.basic_consume(settings.queue, self._on_message, auto_ack=False)
        except AMQP_ERRORS as exc:
            self.failures += 1
            wait = min(0.5 * 2**self.failures, 10.0)
            self.next_connect = time.monotonic() + wait
            logger.warning(
                "cannot consume from RabbitMQ at %s (%s: %s); retrying in %.1fs",
                describe_broker(),
                type(exc).__name__,
                exc,
                wait,
            )
            self._drop()
            return False
        self.connection, self.channel, self.publish_channel = connection, channel, publish_channel
        self.delay_queues.clear()
        self.failures = 0
        logger.info("consuming %s from %s", settings.queue, describe_broker())
        return True

    def _drop(self) -> None:
        connection, self.connection = self.connection, None
        self.channel = self.publish_channel = None
        self.buffer.clear()
        if connection is not None:
            try:
                if connection.is_open:
                    connection.close()
            except AMQP_ERRORS:
                pass

    def _on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self.buffer.append(
            Delivery(method.routing_key, props.headers or {}, body, method.delivery_tag)
        )

    def stop(self) -> None:
        self._drop()
        RabbitMQTransport.clean_connection()

    # -- the loop ------------------------------------------------------------------------
    def _connected(self) -> bool:
        """Connected, or (re)connect once the backoff has passed; never blocks over 0.5 s."""
        if self.connection is not None:
            return True
        remaining = self.next_connect - time.monotonic()
        if remaining > 0:
            time.sleep(min(remaining, 0.5))
            return False
        return self._connect()

    def run_once(self) -> None:
        if not self._connected():
            return
        try:
            wait = self.outage.remaining()
            if wait:
                # Keep the connection (heartbeats) alive while the database is away.
                self.connection.process_data_events(time_limit=min(wait, 0.5))
                return
            batch_size = replica_setting("CQRS_BATCH_SIZE")
            if not self.buffer:
                self.connection.process_data_events(time_limit=0.5)
            while self.buffer and len(self.buffer) < batch_size:
                before = len(self.buffer)
                self.connection.process_data_events(time_limit=0)
                if len(self.buffer) == before:
                    break
            if not self.buffer:
                self._housekeeping()
                return
            batch, self.buffer = self.buffer[:batch_size], self.buffer[batch_size:]
            self.handle(batch)
        except AMQP_ERRORS as exc:
            logger.warning(
                "RabbitMQ connection lost (%s: %s); unacknowledged messages will be redelivered",
                type(exc).__name__,
                exc,
            )
            self._drop()
            self.next_connect = time.monotonic() + 1.0

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now < self.next_housekeeping:
            return
        self.next_housekeeping = now + 3600
        from django_messaging.cqrs.utils import purge_tombstones

        purge_tombstones()

    def handle(self, batch: list[Delivery]) -> None:
        from django_messaging.cqrs.controller.consumer import consume_batch

        accepted: list[tuple[Delivery, TransportPayload]] = []
        for delivery in batch:
            payload = self._accept(delivery)
            if payload is not None:
                accepted.append((delivery, payload))
        held: list[Delivery] = []
        if accepted:
            try:
                results: list[BaseException | None] = consume_batch(
                    [payload for _, payload in accepted]
                )
            except Exception as exc:  # never let one batch kill the worker
                if not outage.is_transient(exc):
                    logger.exception("applying a batch of %d failed", len(accepted))
                results = [exc] * len(accepted)
            unreachable: BaseException | None = None
            for (delivery, payload), error in zip(accepted, results, strict=True):
                if error is not None and outage.is_transient(error):
                    held.append(delivery)
                    unreachable = error
                elif error is not None:
                    self._failed(payload, error)
            if unreachable is not None:
                self.outage.failed(unreachable, len(held))
            else:
                self.outage.recovered()
        if not held:
            self._ack(batch)
            return
        # The database is away: these wait, unacknowledged, and are applied when it is back.
        kept = {id(delivery) for delivery in held}
        self._ack_each([delivery for delivery in batch if id(delivery) not in kept])
        self.buffer[:0] = held

    def _accept(self, delivery: Delivery) -> TransportPayload | None:
        """The delivery's payload when it is one to apply; otherwise dead-letter it (None)."""
        from django_messaging.cqrs.registries import ReplicaRegistry

        try:
            data = get_serializer("json").loads(delivery.body)
            direct = delivery.routing_key.startswith(f"cqrs.{settings.queue}.") or (
                delivery.headers.get(QUEUE_HEADER) == settings.queue
            )
            payload = TransportPayload.from_message(data, settings.queue if direct else None)
            expired = payload.is_expired()
            known = payload.cqrs_id in ReplicaRegistry.models
        except Exception as exc:  # whatever the body holds, the worker goes on
            logger.error(
                "malformed CQRS message (key %s): %s; moved to %s",
                delivery.routing_key,
                reasons.malformed(exc),
                dead_letter_queue(),
            )
            self._dead_letter_raw(delivery.body, reasons.malformed(exc))
            return None
        if expired:
            logger.error(
                "cqrs_id=%s pk=%s expired at %s; moved to %s",
                payload.cqrs_id,
                payload.pk,
                payload.expires,
                dead_letter_queue(),
            )
            self._dead_letter(payload, reasons.expired(payload))
            return None
        if not known:
            logger.error(
                "cqrs_id=%s pk=%s: no replica model here; moved to %s",
                payload.cqrs_id,
                payload.pk,
                dead_letter_queue(),
            )
            self._dead_letter(payload, reasons.unknown_cqrs_id(payload))
            return None
        return payload

    # -- broker primitives (the Kombu consumer overrides these) ---------------------------------
    def _ack(self, batch: list[Delivery]) -> None:
        self.channel.basic_ack(delivery_tag=batch[-1].tag, multiple=True)

    def _ack_each(self, deliveries: list[Delivery]) -> None:
        """Acknowledge these only (messages before them may still wait)."""
        for delivery in deliveries:
            self.channel.basic_ack(delivery_tag=delivery.tag)

    def _send(
        self,
        exchange: str,
        key: str,
        body: bytes,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        extra: dict[str, Any] = {"headers": headers}
        if expiration_ms:
            extra["expiration"] = str(expiration_ms)
        self.publish_channel.basic_publish(
            exchange=exchange,
            routing_key=key,
            body=body,
            properties=properties(**extra),
            mandatory=True,
        )

    def _declare_delay_queue(self, name: str, milliseconds: int) -> None:
        self.publish_channel.queue_declare(
            queue=name, durable=True, arguments=delay_queue_arguments(milliseconds)
        )

    # -- failures --------------------------------------------------------------------------
    def _failed(self, payload: TransportPayload, error: BaseException) -> None:
        from django_messaging.cqrs.registries import ReplicaRegistry

        model = ReplicaRegistry.models[payload.cqrs_id]
        reason = reasons.apply_failed(payload, error)
        if isinstance(error, PayloadError) or not model.should_retry_cqrs(payload.retries, error):
            logger.error(
                "cqrs_id=%s pk=%s failed after %d retries (%s); moved to %s",
                payload.cqrs_id,
                payload.pk,
                payload.retries,
                reason,
                dead_letter_queue(),
                exc_info=error,
            )
            self._dead_letter(payload, reason)
            return
        delay = model.get_cqrs_retry_delay(payload.retries)
        logger.warning(
            "cqrs_id=%s pk=%s failed (%s); retry %d in %ss",
            payload.cqrs_id,
            payload.pk,
            reason,
            payload.retries + 1,
            delay,
            exc_info=error if payload.retries == 0 else None,
        )
        payload.retries += 1
        self._retry(payload, delay, reason)

    def _retry(self, payload: TransportPayload, delay: float, reason: str) -> None:
        headers = {ERROR_HEADER: reason[:500]}
        if payload.queue:
            headers[QUEUE_HEADER] = payload.queue
        milliseconds = int(delay * 1000)
        if milliseconds <= 0:
            self._send("", settings.queue, encode(payload), headers)
            return
        delay_queue = f"{settings.queue}.delay.{milliseconds}"
        if delay_queue not in self.delay_queues:
            self._declare_delay_queue(delay_queue, milliseconds)
            self.delay_queues.add(delay_queue)
        self._send("", delay_queue, encode(payload), headers)

    def _dead_letter_raw(self, body: bytes, reason: str, queue: str | None = None) -> None:
        # Straight into the queue (default exchange): routable whatever the CQRS_ID.
        ttl = replica_setting("dead_message_ttl")
        expiration = int(ttl) * 1000 if ttl else None
        headers = {ERROR_HEADER: reason[:500]}
        if queue:  # a direct SYNC stays direct when cqrs_dead_letters retries it
            headers[QUEUE_HEADER] = queue
        self._send("", dead_letter_queue(), body, headers, expiration)

    def _dead_letter(self, payload: TransportPayload, reason: str) -> None:
        payload.is_dead_letter = True
        self._dead_letter_raw(encode(payload), reason, payload.queue)
