"""Test CQRS replication without RabbitMQ: master messages are captured as they would go on the
wire, and a replica applies them through the real replica consumer, in this process.

    from django_messaging.cqrs.testing import CqrsBroker
    from django_messaging.testing import committed

    def test_author_replicates(db):
        with CqrsBroker() as broker:
            with committed():                         # the commit that publishes
                author = Author.objects.create(name="Ann")
            broker.assert_published("author", pk=author.pk, name="Ann")
            broker.deliver()                          # the replica consumer applies it
        assert AuthorRef.objects.get(pk=author.pk).name == "Ann"

Inside the block ``MESSAGING["CQRS"]["transport"]`` is :class:`MemoryTransport` (through
``override_settings``: enter the broker *inside* any ``override_settings`` of the CQRS
section). Everything else is the real master: signals, suppression, the publish mode and the
``PendingMessage`` outbox, payloads, serializers; a message is published when its transaction
commits, so inside a ``TestCase`` wrap the writes in :func:`~django_messaging.testing.committed`.

:meth:`CqrsBroker.deliver` routes the captured messages as RabbitMQ would (the replica queue
is bound to the ``CQRS_ID`` of every replica model and to direct syncs for this service) and
runs :class:`~django_messaging.cqrs.transport.replica.ReplicaConsumer`, the code of
``cqrs_consume``: type checks, revisions, retries through delay queues (their delay is waited,
as in production: set a short ``CQRS_RETRY_DELAY`` in tests), dead letters with their
``x-cqrs-error`` reason, database outages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings as django_settings
from django.db import router
from django.test.utils import override_settings

from django_messaging.cqrs.conf import dead_letter_queue, settings
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.registries import ReplicaRegistry
from django_messaging.cqrs.transport.base import BaseTransport
from django_messaging.cqrs.transport.replica import ReplicaConsumer
from django_messaging.cqrs.transport.wire import Delivery, decode, encode, routing_key
from django_messaging.testing import MessageLog, SentMessage, committed

__all__ = ["CqrsBroker", "MemoryTransport"]

_active: list[CqrsBroker] = []


def _current() -> CqrsBroker:
    if not _active:
        raise RuntimeError("MemoryTransport is used outside a CqrsBroker block")
    return _active[-1]


class MemoryTransport(BaseTransport):
    """The CQRS transport of :class:`CqrsBroker`: publishing records the message as RabbitMQ
    would receive it (exchange, routing key, body) and succeeds."""

    @staticmethod
    def produce(payload: TransportPayload) -> None:
        _current()._publish(settings.exchange, routing_key(payload), encode(payload), {}, payload)

    @staticmethod
    def consume(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("consume with CqrsBroker.deliver()")

    @classmethod
    def consumer_worker(cls, cqrs_ids: list[str] | None = None) -> ReplicaConsumer:
        return MemoryReplicaConsumer(_current(), cqrs_ids)


def _decoder(key: str) -> Any:
    def decode_body(body: bytes | None) -> TransportPayload:
        return decode(Delivery(key, {}, body or b"", None))

    return decode_body


class MemoryReplicaConsumer(ReplicaConsumer):
    """The replica consumer of ``cqrs_consume`` over the queues of a :class:`CqrsBroker`."""

    name = "cqrs_consume (in memory)"

    def __init__(self, broker: CqrsBroker, cqrs_ids: list[str] | None = None) -> None:
        super().__init__(cqrs_ids)
        self.broker = broker
        self._tags = 0

    def describe(self) -> str:
        return "the in-memory CQRS broker"

    def _open(self) -> None:
        self.connection = self.broker

    def _close(self) -> None:
        self.connection = None

    def _fill(self, batch_size: int) -> None:
        self.broker._release_due()
        queue = self.broker._queue
        while queue and len(self.buffer) < batch_size:
            key, headers, body = queue.pop(0)
            self._tags += 1
            self.buffer.append(Delivery(key, headers, body, self._tags))

    def _idle(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.05))

    def _ack(self, batch: list[Delivery]) -> None:
        self.broker.acked += len(batch)

    def _ack_each(self, deliveries: list[Delivery]) -> None:
        self.broker.acked += len(deliveries)

    def _send(
        self,
        exchange: str,
        key: str,
        body: bytes,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        self.broker._publish(exchange, key, body, headers)

    def _declare_delay_queue(self, name: str, milliseconds: int) -> None:
        self.broker._delay_queues[name] = milliseconds


class CqrsBroker:
    """An in-memory RabbitMQ for CQRS; a context manager (see the module docstring).

    ``published``: every message the master published (destination: the routing key; value:
    the :class:`TransportPayload` the replica decodes); ``dead_letters``: what reached the dead
    letter queue, with its ``x-cqrs-error`` header; ``payloads``: the payload objects the master
    handed to the transport.
    """

    def __init__(self) -> None:
        self.published = MessageLog()
        self.dead_letters = MessageLog()
        self.payloads: list[TransportPayload] = []
        self.acked = 0
        self._queue: list[tuple[str, dict[str, Any], bytes]] = []
        self._delayed: list[tuple[float, str, dict[str, Any], bytes]] = []
        self._delay_queues: dict[str, int] = {}
        self._routed = 0
        self._override: Any = None

    # --- the block --------------------------------------------------------------------------

    def __enter__(self) -> CqrsBroker:
        path = f"{MemoryTransport.__module__}.{MemoryTransport.__qualname__}"
        messaging = getattr(django_settings, "MESSAGING", None) or {}
        legacy = getattr(django_settings, "CQRS", None)
        if "CQRS" not in messaging and isinstance(legacy, dict):
            self._override = override_settings(CQRS={**legacy, "transport": path})
        else:
            section = {**messaging.get("CQRS", {}), "transport": path}
            self._override = override_settings(MESSAGING={**messaging, "CQRS": section})
        self._override.enable()
        _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active.remove(self)
        self._override.disable()

    # --- capture ----------------------------------------------------------------------------

    def _publish(
        self,
        exchange: str,
        key: str,
        body: bytes,
        headers: dict[str, Any],
        payload: TransportPayload | None = None,
    ) -> None:
        if payload is not None:
            self.payloads.append(payload)
        message = SentMessage(
            key,
            body,
            tuple(headers.items()),
            key=key,
            extra={"exchange": exchange},
            decoder=_decoder(key),
        )
        if exchange == "" and key == dead_letter_queue():
            self.dead_letters.record(message)
            return
        if exchange == "" and key in self._delay_queues:
            due = time.monotonic() + self._delay_queues[key] / 1000
            self._delayed.append((due, settings.queue, headers, body))
            return
        if exchange == "" and key == settings.queue:
            self._queue.append((key, headers, body))
            return
        self.published.record(message)

    def assert_published(
        self, cqrs_id: str, *, pk: Any = None, signal: str | None = None, **fields: Any
    ) -> TransportPayload:
        """Assert that a message of ``cqrs_id`` (with this ``pk``, signal ``"SAVE"``, ``"SYNC"``
        or ``"DELETE"``, and these instance ``fields``) was published; return its payload as
        the replica decodes it."""
        seen = []
        for message in self.published:
            payload: TransportPayload = message.value
            seen.append(f"{payload.signal_type.value} {payload.cqrs_id} pk={payload.pk}")
            if payload.cqrs_id != cqrs_id or (pk is not None and str(payload.pk) != str(pk)):
                continue
            if signal is not None and payload.signal_type.value != signal:
                continue
            data = payload.instance_data or {}
            if all(data.get(k) == v for k, v in fields.items()):
                return payload
        raise AssertionError(
            f"no {signal or ''} message of {cqrs_id} pk={pk} with {fields} published; "
            f"published: {'; '.join(seen) or 'nothing'}"
        )

    # --- delivery ---------------------------------------------------------------------------

    def _bound(self, key: str, cqrs_ids: list[str]) -> bool:
        """Whether the replica queue is bound to ``key`` (as ``declare_replica_topology``)."""
        queue = settings.queue
        return any(key in (cqrs_id, f"cqrs.{queue}.{cqrs_id}") for cqrs_id in cqrs_ids)

    def _release_due(self) -> None:
        now = time.monotonic()
        due = [entry for entry in self._delayed if entry[0] <= now]
        for entry in due:
            self._delayed.remove(entry)
            self._queue.append(entry[1:])

    def deliver(
        self,
        messages: Iterable[SentMessage] | None = None,
        *,
        cqrs_ids: list[str] | None = None,
        timeout: float = 30.0,
    ) -> int:
        """Route ``messages`` (default: those published since the last call) to the replica
        queue of ``MESSAGING["CQRS"]["queue"]`` and run the replica consumer until the queue is
        empty and no retry waits; return how many messages were acknowledged."""
        ids = list(cqrs_ids or ReplicaRegistry.models)
        if messages is None:
            messages = list(self.published)[self._routed :]
            self._routed = len(self.published)
        for message in messages:
            if self._bound(message.destination, ids):
                self._queue.append(
                    (message.destination, dict(message.headers), message.body or b"")
                )
        before = self.acked
        consumer = MemoryReplicaConsumer(self, cqrs_ids)
        deadline = time.monotonic() + timeout
        consumer.start()
        try:
            with committed(
                router.db_for_write(ReplicaRegistry.models[ids[0]]) if ids else "default"
            ):
                while self._queue or self._delayed or consumer.buffer:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"the replica still had {len(self._queue) + len(self._delayed)} "
                            f"messages after {timeout}s"
                        )
                    if not self._queue and not consumer.buffer:
                        time.sleep(0.01)  # a retry waits in its delay queue
                    consumer.run_once()
        finally:
            consumer.stop()
        return self.acked - before

    def message(self, payload: TransportPayload) -> SentMessage:
        """A hand-made message: ``payload`` as the master would publish it."""
        key = routing_key(payload)
        return SentMessage(key, encode(payload), (), key=key, decoder=_decoder(key))
