"""Test the outbox without RabbitMQ: capture what the relay would send, deliver it to a
subscriber callback through the real subscriber code.

    from django_messaging.outbox.testing import OutboxBroker

    def test_order_reaches_billing(db):
        with OutboxBroker() as broker:
            Order.objects.create(total=10)             # @publish writes the outbox row
            sent = broker.flush()                      # the relay sends the committed rows
            sent[0].value                              # {"id": 1, "total": 10}
            broker.assert_sent("/topic/orders.v1", value={"id": 1, "total": 10})
            [outcome] = broker.deliver(billing_callback, "/topic/orders.v1")
            assert outcome.acked

- :meth:`OutboxBroker.flush` runs the outbox :class:`~django_messaging.outbox.relay.Relay`
  over the ``Published`` rows that are committed (a rolled-back save leaves no row, so nothing
  is sent), with :class:`~django_messaging.testing.MemoryTransport` for the broker: the same
  claim, encoding, headers (``dop-msg-id``...), marking sent and retries as ``publish``.
- :meth:`OutboxBroker.deliver` hands messages to the subscriber
  (:class:`~django_messaging.outbox.consumers.Consumer`) of ``subscribe``: decoding,
  idempotency (``Received``), retries, ``payload.save()``/``nack()``, dead letters with their
  reason. Its commit hooks run as at a real commit (:func:`~django_messaging.testing.committed`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.utils.module_loading import import_string

from django_messaging.core.serializers import get_serializer
from django_messaging.core.transports import OutgoingMessage
from django_messaging.outbox.conf import settings
from django_messaging.outbox.consumers import Consumer, queue_name_for
from django_messaging.outbox.headers import MESSAGE_ID_HEADER
from django_messaging.outbox.models import Published, Received
from django_messaging.outbox.payloads import Payload
from django_messaging.outbox.relay import Relay
from django_messaging.testing import MemoryTransport, MessageLog, SentMessage, committed
from django_messaging.testing.transactions import only_test_transaction

__all__ = ["Delivered", "OutboxBroker"]


def _decoder(message: Any = None) -> Callable[[bytes | None], Any]:
    serializer = get_serializer(settings.BODY_SERIALIZER)

    def decode(body: bytes | None) -> Any:
        return serializer.loads(body or b"")

    return decode


@dataclass
class Delivered:
    """What became of one delivered message."""

    message: SentMessage
    #: ``"acked"``, ``"nacked"`` (the broker dead-letters it), ``"dead-lettered"`` (with a
    #: reason, by the subscriber) or ``"unacknowledged"`` (the subscriber would drop the
    #: connection and get it again).
    outcome: str
    reason: str | None = None
    error: BaseException | None = None

    @property
    def acked(self) -> bool:
        return self.outcome == "acked"

    @property
    def dead_lettered(self) -> bool:
        return self.outcome in ("nacked", "dead-lettered")


class _Frame:
    """A received STOMP frame: what the subscriber reads of it."""

    def __init__(self, headers: dict[str, Any], body: bytes | None) -> None:
        self.headers = headers
        self.body = body
        self.cmd = "MESSAGE"


class _Connection:
    """The subscriber's STOMP connection, answered by :class:`OutboxBroker`."""

    def __init__(self, broker: OutboxBroker, consumer: Consumer) -> None:
        self.broker = broker
        self.consumer = consumer
        self.acks: list[str] = []
        self.nacks: list[str] = []

    def is_connected(self) -> bool:
        return True

    def ack(self, ack_id: str, subscription: str | None = None, **kwargs: Any) -> None:
        self.acks.append(ack_id)

    def nack(self, ack_id: str, subscription: str | None = None, **kwargs: Any) -> None:
        self.nacks.append(ack_id)

    def send(self, destination: str, body: Any, headers: dict[str, Any] | None = None) -> None:
        headers = dict(headers or {})
        receipt = headers.pop("receipt", None)
        data = body.encode() if isinstance(body, str) else body
        self.broker.dead_letters.record(
            SentMessage(destination, data, tuple(headers.items()), decoder=_decoder())
        )
        if receipt is not None:
            self.consumer.on_receipt(receipt)


class OutboxBroker:
    """Capture and delivery for the outbox; a context manager (nothing to set up or tear down,
    it exists so that every package's test broker reads alike).

    ``sent``: what the relay sent; ``dead_letters``: what reached ``DLQ.<queue>`` queues.
    ``using``: the database of the ``Published`` rows (default: the router's).
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using
        self.sent = MessageLog()
        self.dead_letters = MessageLog()
        self.transport = MemoryTransport(self.sent, decoder=_decoder)
        #: Captured messages per destination already handed to a subscriber.
        self._delivered: dict[str, int] = {}

    def __enter__(self) -> OutboxBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.transport.close()

    # --- capture ----------------------------------------------------------------------------

    def flush(self) -> list[SentMessage]:
        """Send every committed outbox row that is due, as the ``publish`` relay would; return
        the messages sent by this call. Inside a ``transaction.atomic()`` of the code under test
        this raises: its rows are not committed, the relay could not see them yet."""
        alias = self.using or router.db_for_write(Published)
        if connections[alias].in_atomic_block and not only_test_transaction(alias):
            raise RuntimeError(
                "OutboxBroker.flush() inside transaction.atomic(): the relay sends committed "
                "rows only; call it after the block."
            )
        before = len(self.sent)
        relay = Relay(self.transport, using=self.using)
        relay.start()
        if not self.transport.is_open():
            self.transport.open()
        policy = relay.current_policy()
        try:
            while True:
                rows = relay.store.claim(relay.owner, policy.batch_size, policy.lease)
                if not rows:
                    break
                relay.send_rows(rows)
                if not self.transport.is_open():
                    self.transport.open()
        finally:
            relay.stop()
        return list(self.sent)[before:]

    def assert_sent(self, destination: str | None = None, **expected: Any) -> SentMessage:
        """:meth:`MessageLog.assert_sent` after a :meth:`flush`."""
        self.flush()
        return self.sent.assert_sent(destination, **expected)

    def assert_not_sent(self, destination: str | None = None, **expected: Any) -> None:
        self.flush()
        self.sent.assert_not_sent(destination, **expected)

    # --- delivery ---------------------------------------------------------------------------

    @staticmethod
    def message(
        destination: str,
        body: Any,
        headers: dict[str, Any] | None = None,
        *,
        msg_id: str | None = None,
    ) -> SentMessage:
        """A hand-made message as the relay would send it (``dop-msg-id`` set unless given)."""
        serializer = get_serializer(settings.BODY_SERIALIZER)
        items = {str(k): str(v) for k, v in (headers or {}).items()}
        items.setdefault(MESSAGE_ID_HEADER, msg_id or uuid.uuid4().hex)
        return MemoryTransport(decoder=_decoder).sent_message(
            OutgoingMessage(
                key=items[MESSAGE_ID_HEADER],
                destination=destination,
                body=serializer.dumps(body),
                headers=items,
                content_type=getattr(serializer, "content_type", None),
            )
        )

    def deliver(
        self,
        callback: Callable[[Payload], Any] | str,
        destination: str,
        messages: Iterable[SentMessage] | None = None,
        *,
        queue_name: str | None = None,
    ) -> list[Delivered]:
        """Hand ``messages`` (default: the captured messages to ``destination`` not delivered
        yet, after a :meth:`flush`) one by one to the ``subscribe`` command's subscriber for ``callback``
        (a callable or its dotted path), as RabbitMQ would; return what became of each."""
        function: Callable[[Payload], Any] = (
            import_string(callback) if isinstance(callback, str) else callback
        )
        if messages is None:
            self.flush()
            captured = self.sent.to(destination)
            messages = captured[self._delivered.get(destination, 0) :]
            self._delivered[destination] = len(captured)
        consumer = Consumer(_committing(function), destination, queue_name)
        connection = _Connection(self, consumer)
        consumer.connection = connection
        results = []
        for number, message in enumerate(messages, start=1):
            results.append(self._deliver_one(consumer, connection, destination, message, number))
        return results

    def _deliver_one(
        self,
        consumer: Consumer,
        connection: _Connection,
        destination: str,
        message: SentMessage,
        number: int,
    ) -> Delivered:
        ack_id = f"{consumer.subscription_id}-{number}-{uuid.uuid4().hex[:6]}"
        headers: dict[str, Any] = {k: v for k, v in message.headers.items() if v is not None}
        headers.update(
            {
                "destination": destination,
                "message-id": ack_id,
                "ack": ack_id,
                "subscription": consumer.subscription_id,
                "redelivered": "false",
                "content-length": str(len(message.body or b"")),
            }
        )
        frame = _Frame(headers, message.body)
        dead_before = len(self.dead_letters)
        try:
            consumer.handle(frame)
        except Exception as exc:
            return Delivered(message, "unacknowledged", repr(exc), exc)
        if ack_id in connection.nacks:
            dead = SentMessage(
                f"/queue/{consumer.dead_letter_queue}",
                message.body,
                tuple(message.header_items),
                decoder=_decoder(),
            )
            self.dead_letters.record(dead)
            return Delivered(message, "nacked")
        if len(self.dead_letters) > dead_before:
            reason = self.dead_letters[-1].headers.get("dop-dead-letter-reason")
            return Delivered(message, "dead-lettered", reason)
        if ack_id in connection.acks:
            return Delivered(message, "acked")
        return Delivered(message, "unacknowledged")

    @staticmethod
    def received(destination: str, queue_name: str | None = None) -> list[str]:
        """The message ids the subscriber of ``destination`` recorded as processed."""
        queue = queue_name_for(destination, queue_name)
        return list(Received.objects.filter(queue=queue).values_list("msg_id", flat=True))


def _committing(callback: Callable[[Payload], Any]) -> Callable[[Payload], Any]:
    """``callback`` whose commit hooks run when it returns, as its transaction's commit would
    (inside a test case's transaction, which never commits)."""

    def call(payload: Payload) -> Any:
        with committed(router.db_for_write(Received)):
            return callback(payload)

    call.__module__ = getattr(callback, "__module__", "?")
    call.__qualname__ = getattr(callback, "__qualname__", repr(callback))
    return call
