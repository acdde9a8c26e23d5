"""The subscriber behind ``./manage.py subscribe``: an idempotent consumer of one destination.

Messages arrive on stomp.py's receiver thread and are processed one by one on the worker's
thread (which owns the database connection), so slow callbacks never block heart-beats.

Per message:

1. No idempotency header (``CONSUMER_ID_HEADERS``) or a body that does not decode →
   dead-lettered to ``DLQ.<queue>`` with the reason in a header, and a log line.
2. A ``Received`` row for ``(msg_id, queue)`` exists → acknowledged, callback not called.
3. The callback runs. ``payload.save()`` + commit → acknowledged. ``payload.nack()`` → the
   broker dead-letters it. An exception → checked (2.) and called again, up to
   ``CONSUMER_MAX_RETRY_ATTEMPTS`` times, then dead-lettered. Neither save nor nack →
   an error log and a dead letter, and the subscription goes on.

Dead letters are sent with a receipt and only then is the original acknowledged.

Throughput: the subscription has ``CONSUMER_PREFETCH_COUNT`` messages in flight. When
several are waiting, they are handled in one database transaction (one commit instead of one
per message; a callback's own ``transaction.atomic()`` becomes a savepoint in it, and the
``Received`` rows of ``payload.save()`` are written by one INSERT just before the commit) and
acknowledged together once that transaction committed. A callback that raises, a database error
or a failed commit rolls the whole batch back, and its messages are handled again one at a time,
each in its own transaction with the retries above, as a single waiting message always is. So
callbacks may run again for messages whose batch was rolled back: their database work is undone,
side effects outside the database are not (delivery is at least once, as on any redelivery).
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from django import db
from django.db import IntegrityError, router, transaction

from django_messaging.core import metrics, tracing
from django_messaging.core.serializers import SerializerError, get_serializer
from django_messaging.core.worker import Worker
from django_messaging.outbox import connection as stomp_connection
from django_messaging.outbox.conf import settings
from django_messaging.outbox.correlation import CORRELATION_ID_HEADER, correlation_id
from django_messaging.outbox.exceptions import TransportError
from django_messaging.outbox.models import Received
from django_messaging.outbox.payloads import Payload

logger = logging.getLogger(__name__)

_LOST = object()
#: Headers the broker sets per delivery; they are not copied onto a dead letter.
_DELIVERY_HEADERS = {
    "message-id",
    "ack",
    "subscription",
    "destination",
    "redelivered",
    "content-length",
    "receipt",
    "persistent",
}
DEAD_LETTER_REASON_HEADER = "dop-dead-letter-reason"
#: What a lost or refused database connection raises: the database's fault, not the message's.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (db.OperationalError, db.InterfaceError)


class DatabaseUnavailable(Exception):
    """The database is down: the message is kept and handled again once it is back."""


#: What ``_call`` returns for a message found processed (acknowledged after commit).
ALREADY_PROCESSED = "already processed"


def database_is_up(using: str) -> bool:
    """Open a fresh connection to ``using`` and run a trivial query."""
    connection = db.connections[using]
    try:
        connection.close()
    except Exception:
        logger.debug("closing the broken connection to %s failed", using, exc_info=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except db.DatabaseError:
        return False
    return True


def queue_name_for(destination: str, queue_name: str | None = None) -> str:
    """The queue a destination is consumed from: ``queue_name`` or the routing key."""
    return queue_name or destination.rstrip("/").split("/")[-1]


class Consumer(Worker):
    name = "outbox subscriber"
    listener_name = "django-messaging-outbox-consumer"
    #: Most messages handled per ``run_once`` (between database connection checks), and so in
    #: one transaction.
    batch_limit = 100

    def __init__(
        self,
        callback: Callable[[Payload], Any],
        destination: str,
        queue_name: str | None = None,
    ) -> None:
        self.callback = callback
        self.destination = destination
        self.queue_name = queue_name_for(destination, queue_name)
        self.dead_letter_queue = f"{settings.DEAD_LETTER_PREFIX}{self.queue_name}"
        self.connection: Any = None
        self.subscription_id = f"outbox-{uuid.uuid4().hex[:8]}"
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._receipts: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._generation = 0
        self._broken = False
        self._counter = itertools.count(1)
        self._connect_failures = 0
        self._next_connect = 0.0
        #: ERROR frames since a message was last handled: each closes the connection, and
        #: the reconnect after one waits as after a failed connect.
        self._broker_errors = 0
        #: The message whose handling waits for the database, and when to look again.
        self._held: tuple[int, Any] | None = None
        #: Messages of a rolled-back batch, handled again one per transaction.
        self._backlog: deque[tuple[int, Any]] = deque()
        self._database_failures = 0
        self._next_database_check = 0.0
        self.handled = 0  # messages taken off the queue (acknowledged or dead-lettered)
        self.shutdown_timeout = settings.CONSUMER_SHUTDOWN_TIMEOUT

    def messages_handled(self) -> int:
        """Messages taken off the queue since the start (the status samples' throughput)."""
        return self.handled

    # listener callbacks (receiver thread) ---------------------------------------------------
    def on_message(self, frame: Any) -> None:
        subscription = frame.headers.get("subscription")
        if subscription != self.subscription_id:
            # Never handled, acknowledged or rejected here: an ACK or NACK naming a
            # subscription this connection does not hold draws a broker ERROR. Unacknowledged,
            # the broker gives the message back when the connection closes.
            logger.warning(
                "message %s from subscription %r ignored: %s consumes only %r",
                frame.headers.get("message-id"),
                subscription,
                self.queue_name,
                self.subscription_id,
            )
            return
        ack_id = frame.headers.get("ack") or frame.headers.get("message-id")
        if not isinstance(ack_id, str) or not ack_id.strip():
            # Neither acknowledged nor dead-lettered (that ends with an ACK): an ACK without an
            # id draws a broker ERROR. The broker redelivers it on the next connection.
            logger.error(
                "message on %s without an ack or message-id header ignored (headers: %s)",
                self.queue_name,
                sorted(frame.headers),
            )
            return
        self._inbox.put((self._generation, frame))

    def on_receipt(self, receipt_id: str | None) -> None:
        self._receipts.put(receipt_id)

    def on_broker_error(self, headers: dict[str, str], body: str) -> None:
        self._broker_errors += 1
        self._broken = True
        self._receipts.put(_LOST)

    def on_disconnected(self) -> None:
        self._broken = True
        self._receipts.put(_LOST)

    # connection ---------------------------------------------------------------------------
    def is_connected(self) -> bool:
        return self.connection is not None and not self._broken and self.connection.is_connected()

    def _receipt(self) -> str:
        return f"{self.subscription_id}-r{next(self._counter)}"

    def _wait_receipt(
        self, receipt: str, what: str, timeout: float | None = None, *, until_stop: bool = False
    ) -> None:
        """Wait for the broker's RECEIPT ``receipt``; ``until_stop``: give up when a stop is
        requested (while connecting: nothing is held that a stop must finish)."""
        deadline = time.monotonic() + (timeout or float(settings.RECEIPT_TIMEOUT))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(f"no receipt from the broker for {what}")
            try:
                item = self._receipts.get(timeout=min(remaining, 0.2 if until_stop else 0.5))
            except queue.Empty:
                if until_stop and self.stopping():
                    raise TransportError(f"stop requested while waiting for {what}") from None
                continue
            if item is _LOST:
                raise TransportError(f"connection lost while waiting for {what}")
            if item == receipt:
                return

    def _connect(self) -> None:
        self._close()
        self._generation += 1
        self._receipts = queue.SimpleQueue()
        self._broken = False
        listener_class = settings.imported("CONSUMER_LISTENER_CLASS")
        connection = stomp_connection.factory_connection(auto_decode=False)
        connection.set_listener(self.listener_name, listener_class(self))
        self.connection = connection
        try:
            stomp_connection.connect(connection, stopped=self.stopping)
        except Exception as exc:
            self._close()
            raise TransportError(
                f"cannot connect to {stomp_connection.host_and_ports()}: {exc!r}"
            ) from exc
        self._declare_dead_letter_queue()
        headers = dict(settings.STOMP_QUEUE_HEADERS)
        prefetch = settings.CONSUMER_PREFETCH_COUNT
        if prefetch is not None:
            headers["prefetch-count"] = str(prefetch)
        if settings.EXCLUSIVE_QUEUE:
            headers["exclusive"] = "true"
        headers.update(
            {
                "x-queue-name": self.queue_name,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.dead_letter_queue,
            }
        )
        receipt = self._receipt()
        headers["receipt"] = receipt
        connection.subscribe(
            self.destination, self.subscription_id, ack="client-individual", headers=headers
        )
        self._wait_receipt(receipt, f"SUBSCRIBE {self.destination}", until_stop=True)
        logger.info(
            "subscribed to %s (queue %s, dead letters to %s)",
            self.destination,
            self.queue_name,
            self.dead_letter_queue,
        )

    def _declare_dead_letter_queue(self) -> None:
        """Make ``DLQ.<queue>`` exist (durable) before anything can be dead-lettered to it,
        without consuming from it or publishing to it.

        RabbitMQ declares a ``/queue/`` destination when it reads a SEND frame to it, even one
        inside a transaction; aborting the transaction discards the message. A subscription
        would be handed the dead letters already waiting there.
        """
        transaction = f"{self.subscription_id}-declare-{next(self._counter)}"
        self.connection.begin(transaction)
        self.connection.send(
            f"/queue/{self.dead_letter_queue}",
            b"",
            headers={"durable": "true", "auto-delete": "false", "transaction": transaction},
        )
        receipt = self._receipt()
        self.connection.abort(transaction, headers={"receipt": receipt})
        self._wait_receipt(receipt, f"declaring {self.dead_letter_queue}", until_stop=True)

    def _close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        connection.remove_listener(self.listener_name)
        stomp_connection.disconnect(connection)

    # Worker -------------------------------------------------------------------------------
    def start(self) -> None:
        self._ensure_connected()

    def stop(self) -> None:
        if self.is_connected():
            try:
                self.connection.unsubscribe(self.subscription_id)
            except Exception:
                logger.debug("unsubscribe failed", exc_info=True)
        self._close()

    def _ensure_connected(self) -> bool:
        if self.is_connected():
            return True
        if self.connection is not None and self._broker_errors:
            # The broker closed the connection with an ERROR frame: reconnecting at once
            # would meet the same error in a loop.
            self._close()
            delay = stomp_connection.reconnect_backoff().delay(self._broker_errors)
            self._next_connect = time.monotonic() + delay
            logger.warning(
                "subscriber for %s closed by a broker error (%d in a row), reconnecting in %.1fs",
                self.destination,
                self._broker_errors,
                delay,
            )
        now = time.monotonic()
        if now < self._next_connect:
            time.sleep(min(self._next_connect - now, 0.5))
            return False
        try:
            self._connect()
        except Exception as exc:
            if self.stopping():
                logger.info("subscriber for %s stopping: %s", self.destination, exc)
                self._close()
                return False
            self._connect_failures += 1
            delay = stomp_connection.reconnect_backoff().delay(self._connect_failures)
            self._next_connect = time.monotonic() + delay
            logger.warning(
                "subscriber for %s cannot connect (attempt %d), retrying in %.1fs: %s",
                self.destination,
                self._connect_failures,
                delay,
                exc,
            )
            self._close()
            return False
        if self._connect_failures:
            logger.info("subscriber for %s reconnected", self.destination)
        self._connect_failures = 0
        return True

    def run_once(self) -> None:
        if not self._ensure_connected():
            return
        if self._held is not None:
            if not self._database_back():
                return
            (generation, frame), self._held = self._held, None
            self._handle_alone(generation, frame)
            return
        if self._backlog:
            generation, frame = self._backlog.popleft()
            self._handle_alone(generation, frame)
            return
        try:
            batch = [self._inbox.get(timeout=0.5)]
        except queue.Empty:
            return
        while len(batch) < self.batch_limit:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        # Frames of a connection that is gone are dropped: the broker redelivers them.
        current = [frame for generation, frame in batch if generation == self._generation]
        if len(current) == 1:
            self._handle_alone(self._generation, current[0])
        elif current and self.is_connected():
            self._handle_batch(current)

    def _handle_alone(self, generation: int, frame: Any) -> None:
        """One message in its own transaction (the callback's); the database is checked on
        errors, and the message held while it is down."""
        if generation != self._generation or not self.is_connected():
            return
        try:
            self.handle(frame)
        except DatabaseUnavailable as exc:
            self._hold(generation, frame, exc)
            return
        except Exception as exc:
            self._drop_connection(frame, exc)
            return
        self.handled += 1
        self._broker_errors = 0

    def _drop_connection(self, frame: Any, error: BaseException) -> None:
        """Not acknowledged: drop the connection so the broker redelivers it."""
        logger.error(
            "message %s on %s not handled, it will be redelivered: %r",
            frame.headers.get("message-id"),
            self.queue_name,
            error,
        )
        db.close_old_connections()
        self._close()
        self._connect_failures += 1
        self._next_connect = time.monotonic() + stomp_connection.reconnect_backoff().delay(
            self._connect_failures
        )

    def _handle_batch(self, frames: list[Any]) -> None:
        """Several messages in one transaction, acknowledged after it committed."""
        using = self._database()
        settled: list[tuple[Any, dict[str, Any], str, Any]] = []
        unfinished = list(frames)
        try:
            with transaction.atomic(using=using):
                processed = self._processed_ids(frames)
                for frame in frames:
                    decoded = self._decode(frame)
                    if decoded is None:  # dead-lettered
                        unfinished.remove(frame)
                        continue
                    headers, msg_id, body = decoded
                    if msg_id in processed:
                        logger.info(
                            "message %s on %s already processed: acknowledged",
                            msg_id,
                            self.queue_name,
                        )
                        outcome: Any = ALREADY_PROCESSED
                    else:
                        outcome = self._call_in_batch(headers, msg_id, body)
                    if (
                        outcome is None
                        or getattr(outcome, "acked", False)
                        or (getattr(outcome, "nacked", False))
                    ):
                        unfinished.remove(frame)
                        continue
                    if outcome is ALREADY_PROCESSED or outcome.saved:
                        processed.add(msg_id)  # a second copy in this batch is a duplicate
                    settled.append((frame, headers, msg_id, outcome))
                rows = [
                    outcome.message
                    for _, _, _, outcome in settled
                    if isinstance(outcome, Payload) and outcome.pending_commit(using)
                ]
                if rows:
                    Received.objects.using(using).bulk_create(rows)
        except Exception as exc:
            logger.warning(
                "batch of %d messages on %s rolled back (%r): handling them one at a time",
                len(frames),
                self.queue_name,
                exc,
            )
            self.handled += len(frames) - len(unfinished)
            self._backlog.extend((self._generation, frame) for frame in unfinished)
            return
        self.handled += len(frames) - len(settled)
        for frame, headers, msg_id, outcome in settled:
            try:
                self._settle(frame, headers, msg_id, outcome)
            except Exception as exc:  # committed: a redelivery is found processed
                self._drop_connection(frame, exc)
                return
            self.handled += 1
        self._broker_errors = 0

    def _call_in_batch(self, headers: dict[str, Any], msg_id: str, body: Any) -> Payload:
        """One callback call inside the batch's transaction, without a savepoint of its own:
        an exception rolls the whole batch back (see ``_handle_batch``)."""
        payload = Payload(
            self.connection,
            body,
            headers,
            Received(msg_id=msg_id, queue=self.queue_name, headers=headers, body=body),
        )
        payload.insert_later = True
        started = time.perf_counter()
        try:
            self._run_callback(payload, headers, msg_id)
        except Exception:
            metrics.failed("outbox", self.queue_name)
            raise
        metrics.handled("outbox", self.queue_name, started)
        return payload

    def _run_callback(self, payload: Payload, headers: dict[str, Any], msg_id: str) -> None:
        """The callback, with the message's ``dop-correlation-id`` (or a new one) as the
        current correlation id: in its log records and in the messages it writes."""
        value = str(headers.get(CORRELATION_ID_HEADER) or "") or str(uuid.uuid4())
        payload.correlation_id = value
        with correlation_id(value):
            if not tracing.traced(headers):  # off, or no trace to continue (see core.tracing)
                self.callback(payload)
                return
            attributes: dict[str, Any] = {"messaging.message.id": msg_id}
            with tracing.process("rabbitmq", self.queue_name, headers, **attributes):
                self.callback(payload)

    def _processed_ids(self, frames: list[Any]) -> set[str]:
        ids = {m for m in (self.message_id(f.headers) for f in frames) if m is not None}
        rows = Received.objects.filter(queue=self.queue_name, msg_id__in=ids)
        return set(rows.values_list("msg_id", flat=True))

    def _hold(self, generation: int, frame: Any, error: BaseException) -> None:
        """Keep ``frame`` (unacknowledged) until the database answers again."""
        self._held = (generation, frame)
        self._database_failures += 1
        delay = stomp_connection.reconnect_backoff().delay(self._database_failures)
        self._next_database_check = time.monotonic() + delay
        logger.warning(
            "database unavailable while handling message %s on %s (check %d), waiting %.1fs "
            "for it: %s",
            frame.headers.get("message-id"),
            self.queue_name,
            self._database_failures,
            delay,
            error,
        )

    def _database_back(self) -> bool:
        """Whether the held message can be handled again; waits at most half a second."""
        assert self._held is not None
        generation, frame = self._held
        if generation != self._generation or not self.is_connected():
            self._held = None  # its connection is gone: the broker redelivers it
            return False
        remaining = self._next_database_check - time.monotonic()
        if remaining > 0:
            time.sleep(min(remaining, 0.5))
            return False
        if not database_is_up(self._database()):
            self._hold(generation, frame, DatabaseUnavailable("the database does not answer"))
            return False
        logger.info(
            "database available again after %d checks: handling message %s on %s",
            self._database_failures,
            frame.headers.get("message-id"),
            self.queue_name,
        )
        self._database_failures = 0
        return True

    def _database(self) -> str:
        return router.db_for_write(Received)

    def _check_database(self, error: BaseException) -> None:
        """Raise :class:`DatabaseUnavailable` when ``error`` came from a database that is down."""
        if isinstance(error, DATABASE_ERRORS) and not database_is_up(self._database()):
            raise DatabaseUnavailable(repr(error)) from error

    # one message --------------------------------------------------------------------------
    def message_id(self, headers: dict[str, Any]) -> str | None:
        for name in settings.CONSUMER_ID_HEADERS:
            value = headers.get(name)
            if value:
                return str(value)
        return None

    def handle(self, frame: Any) -> None:
        """One message on its own: the callback's transaction is the one that commits."""
        decoded = self._decode(frame)
        if decoded is None:
            return
        headers, msg_id, body = decoded
        try:
            processed = Received.objects.filter(msg_id=msg_id, queue=self.queue_name).exists()
        except DATABASE_ERRORS as exc:
            self._check_database(exc)
            raise
        if processed:
            logger.info("message %s on %s already processed: acknowledged", msg_id, self.queue_name)
            self._ack(headers)
            return
        outcome = self._call(frame, headers, msg_id, body)
        if outcome is not None:
            self._settle(frame, headers, msg_id, outcome)

    def _decode(self, frame: Any) -> tuple[dict[str, Any], str, Any] | None:
        """Headers, idempotency key and body; ``None`` once a bad message is dead-lettered."""
        headers = dict(frame.headers)
        msg_id = self.message_id(headers)
        if msg_id is None:
            self.dead_letter(
                frame,
                "missing idempotency header: none of "
                f"{list(settings.CONSUMER_ID_HEADERS)} is set "
                f"({self._where(headers.get('message-id'))})",
            )
            return None
        limit = Received._meta.get_field("msg_id").max_length or 0  # type: ignore[union-attr]
        if len(msg_id) > limit:
            self.dead_letter(
                frame,
                f"idempotency header longer than {limit} characters "
                f"({self._where(headers.get('message-id'))})",
            )
            return None
        serializer_name = settings.BODY_SERIALIZER
        try:
            body = get_serializer(serializer_name).loads(frame.body)
        except SerializerError as exc:
            # The serializer's own text may quote the body: only the error's kind goes out.
            cause = type(exc.__cause__ or exc).__name__
            self.dead_letter(
                frame,
                f"undecodable body: not valid {serializer_name} ({cause}) ({self._where(msg_id)})",
            )
            return None
        return headers, msg_id, body

    def _call(
        self,
        frame: Any,
        headers: dict[str, Any],
        msg_id: str,
        body: Any,
    ) -> Any:
        """Run the callback, retrying on exceptions. Returns its ``Payload``,
        ``ALREADY_PROCESSED``, or ``None`` once the message is dead-lettered."""
        attempts = max(1, int(settings.CONSUMER_MAX_RETRY_ATTEMPTS))
        error: BaseException | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1 and self._processed_meanwhile(msg_id, error):
                return ALREADY_PROCESSED
            payload = Payload(
                self.connection,
                body,
                headers,
                Received(msg_id=msg_id, queue=self.queue_name, headers=headers, body=body),
            )
            started = time.perf_counter()
            try:
                self._run_callback(payload, headers, msg_id)
            except IntegrityError as exc:
                if Received.objects.filter(msg_id=msg_id, queue=self.queue_name).exists():
                    logger.info("message %s processed concurrently: acknowledged", msg_id)
                    return ALREADY_PROCESSED
                metrics.failed("outbox", self.queue_name)
                error = exc
            except Exception as exc:
                metrics.failed("outbox", self.queue_name)
                # A database outage is not the message's fault: it waits, uncounted.
                self._check_database(exc)
                error = exc
            else:
                metrics.handled("outbox", self.queue_name, started)
                return payload
            if attempt < attempts:
                metrics.retried("outbox", self.queue_name)
                logger.warning(
                    "callback %s failed on message %s (attempt %d of %d): %r",
                    _name(self.callback),
                    msg_id,
                    attempt,
                    attempts,
                    error,
                )
                time.sleep(float(settings.CONSUMER_RETRY_WAIT) * attempt)
        logger.error(
            "callback %s failed %d times on message %s: dead-lettered",
            _name(self.callback),
            attempts,
            msg_id,
            exc_info=error,
        )
        # The exception's text can carry SQL or the message's own data: the log line has it,
        # the dead letter says only what failed where.
        self.dead_letter(
            frame,
            f"callback {_name(self.callback)} failed {attempts} times with {_kind(error)} "
            f"({self._where(msg_id)})",
            log=False,
        )
        return None

    def _processed_meanwhile(self, msg_id: str, error: BaseException | None) -> bool:
        """Before another attempt: did another subscriber of the queue record the message
        while this one failed? Then it is acknowledged and the callback not called again."""
        try:
            processed = Received.objects.filter(msg_id=msg_id, queue=self.queue_name).exists()
        except DATABASE_ERRORS as exc:
            self._check_database(exc)
            return False  # the attempt will say what is wrong
        if processed:
            logger.info(
                "message %s on %s processed by another subscriber after %r: acknowledged",
                msg_id,
                self.queue_name,
                error,
            )
        return processed

    def _settle(self, frame: Any, headers: dict[str, Any], msg_id: str, outcome: Any) -> None:
        """Acknowledge a message whose transaction committed; dead-letter one whose callback
        neither saved (committed) nor nacked."""
        if outcome is ALREADY_PROCESSED:
            self._ack(headers)
            return
        payload: Payload = outcome
        if payload.nacked or payload.acked:
            return
        if payload.saved and payload.committed:
            payload.ack()
            return
        problem = (
            "called payload.save() but its transaction did not commit"
            if payload.saved
            else "returned without calling payload.save() or payload.nack()"
        )
        logger.error(
            "callback %s %s for message %s on %s: dead-lettered. Call payload.save() "
            "inside the transaction that stores your data, or payload.nack() to discard.",
            _name(self.callback),
            problem,
            msg_id,
            self.queue_name,
        )
        self.dead_letter(
            frame,
            f"callback {_name(self.callback)} {problem} ({self._where(msg_id)})",
            log=False,
        )

    def _where(self, msg_id: str | None) -> str:
        return f"message {msg_id}, queue {self.queue_name}"

    def _ack(self, headers: dict[str, Any]) -> None:
        Payload(self.connection, None, headers).ack()

    def dead_letter(self, frame: Any, reason: str, *, log: bool = True) -> None:
        """Copy the message to ``DLQ.<queue>`` (confirmed by receipt), then acknowledge it."""
        headers = dict(frame.headers)
        if log:
            logger.error(
                "message %s on %s dead-lettered to %s: %s",
                headers.get("message-id"),
                self.queue_name,
                self.dead_letter_queue,
                reason,
            )
        out = {k: v for k, v in headers.items() if k not in _DELIVERY_HEADERS}
        out[DEAD_LETTER_REASON_HEADER] = reason[:1000].replace("\n", " ")
        out["dop-dead-letter-from"] = self.queue_name
        out["persistent"] = "true"
        receipt = self._receipt()
        out["receipt"] = receipt
        body = frame.body if frame.body is not None else b""
        try:
            self.connection.send(f"/queue/{self.dead_letter_queue}", body, headers=out)
            self._wait_receipt(receipt, f"dead letter to {self.dead_letter_queue}")
        except Exception as exc:
            logger.error(
                "dead letter to %s failed, message left unacknowledged: %s",
                self.dead_letter_queue,
                exc,
            )
            self._broken = True
            return
        self._ack(headers)
        metrics.dead_lettered("outbox", self.queue_name)


def _kind(error: BaseException | None) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def _name(callback: Any) -> str:
    return f"{getattr(callback, '__module__', '?')}.{getattr(callback, '__qualname__', callback)}"
