"""The replica worker, whatever the client library: fetch a batch, apply it, then acknowledge,
retry or dead-letter each message.

- A malformed, expired or unknown message is dead-lettered at once, with the reason in its
  ``x-cqrs-error`` header (see :mod:`.reasons`).
- A message the replica failed to apply goes to a broker-side delay queue and comes back after
  its model's ``get_cqrs_retry_delay``, until ``should_retry_cqrs`` says no: then it is
  dead-lettered.
- While the replica database is away, messages wait unacknowledged and are applied when it is
  back (see :mod:`.outage`); their retries are not used up.

A client adapter (pika: :mod:`.rabbit_mq`, Kombu: :mod:`.kombu`) supplies the connection, the
fetching and the broker primitives below.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from django_messaging.core import metrics, tracing
from django_messaging.core.exceptions import ConfigurationError
from django_messaging.core.reconnect import Backoff
from django_messaging.core.worker import Worker
from django_messaging.cqrs.conf import dead_letter_queue, replica_setting, settings
from django_messaging.cqrs.controller.consumer import consume_batch
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PayloadError
from django_messaging.cqrs.registries import ReplicaRegistry
from django_messaging.cqrs.transport import outage, reasons
from django_messaging.cqrs.transport.wire import Delivery, decode, failure_headers
from django_messaging.cqrs.utils import purge_tombstones

logger = logging.getLogger(__name__)

#: The wait before reconnecting to the broker.
RECONNECT = Backoff(initial=1.0, cap=10.0)
#: Seconds between two purges of old tombstones (when the queue is idle).
HOUSEKEEPING_EVERY = 3600


def _link(span: Any, deliveries: list[Delivery]) -> None:
    """Link ``span`` to the send span of each delivery that carries one (other traces)."""
    add_link = getattr(span, "add_link", None)
    if add_link is None:
        return
    from opentelemetry import trace

    for delivery in deliveries:
        context = trace.get_current_span(tracing.extract(delivery.headers)).get_span_context()
        if context.is_valid:
            add_link(context)


class ReplicaConsumer(Worker):
    """Fetches batches from the service queue, applies them, retries or dead-letters failures."""

    #: The client library's errors that mean the broker connection is gone.
    broker_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: ``messaging.system`` of the spans of applied batches.
    messaging_system: ClassVar[str] = "rabbitmq"

    def __init__(self, cqrs_ids: list[str] | None = None) -> None:
        self.cqrs_ids = cqrs_ids
        self.connection: Any = None
        self.buffer: list[Delivery] = []
        self.next_connect = 0.0
        self.failures = 0
        self.delay_queues: set[str] = set()
        self.next_housekeeping = 0.0
        self.outage = outage.DatabaseOutage()

    # -- the client adapter ----------------------------------------------------------------
    def describe(self) -> str:
        """The broker's address, without secrets."""
        raise NotImplementedError

    def _open(self) -> None:
        """Connect, declare the topology and start consuming (deliveries go to ``buffer``)."""
        raise NotImplementedError

    def _close(self) -> None:
        """Close the connection (unacknowledged deliveries go back to the queue)."""
        raise NotImplementedError

    def _fill(self, batch_size: int) -> None:
        """Wait up to half a second for deliveries, then take what is there, up to a batch."""
        raise NotImplementedError

    def _idle(self, seconds: float) -> None:
        """Keep the connection (heartbeats) alive for ``seconds`` without applying anything."""
        raise NotImplementedError

    def _ack(self, batch: list[Delivery]) -> None:
        raise NotImplementedError

    def _ack_each(self, deliveries: list[Delivery]) -> None:
        """Acknowledge these only (messages before them may still wait)."""
        raise NotImplementedError

    def _send(
        self,
        exchange: str,
        key: str,
        body: bytes,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        raise NotImplementedError

    def _declare_delay_queue(self, name: str, milliseconds: int) -> None:
        raise NotImplementedError

    # -- connection ----------------------------------------------------------------------
    def start(self) -> None:
        if not settings.QUEUE:
            raise ConfigurationError("MESSAGING['CQRS']['queue'] must be set to consume")
        self._connect()

    def stop(self) -> None:
        self._drop()

    def _cqrs_ids(self) -> list[str]:
        return list(self.cqrs_ids or ReplicaRegistry.models)

    def _prefetch(self) -> int:
        return settings.CONSUMER_PREFETCH_COUNT or 2 * replica_setting("BATCH_SIZE")

    def _connect(self) -> bool:
        try:
            self._open()
        except self.broker_errors as exc:
            self.failures += 1
            wait = RECONNECT.delay(self.failures)
            self.next_connect = time.monotonic() + wait
            logger.warning(
                "cannot consume from %s (%s: %s); retrying in %.1fs",
                self.describe(),
                type(exc).__name__,
                exc,
                wait,
            )
            self._drop()
            return False
        self.delay_queues.clear()
        self.failures = 0
        logger.info("consuming %s from %s", settings.QUEUE, self.describe())
        return True

    def _drop(self) -> None:
        self.buffer.clear()
        if self.connection is not None:
            try:
                self._close()
            except self.broker_errors:
                pass
        self.connection = None

    def _connected(self) -> bool:
        """Connected, or (re)connect once the backoff has passed; never blocks over 0.5 s."""
        if self.connection is not None:
            return True
        remaining = self.next_connect - time.monotonic()
        if remaining > 0:
            time.sleep(min(remaining, 0.5))
            return False
        return self._connect()

    # -- the loop ------------------------------------------------------------------------
    def run_once(self) -> None:
        if not self._connected():
            return
        try:
            wait = self.outage.remaining()
            if wait:
                self._idle(min(wait, 0.5))
                return
            batch_size = replica_setting("BATCH_SIZE")
            self._fill(batch_size)
            if not self.buffer:
                self._housekeeping()
                return
            batch, self.buffer = self.buffer[:batch_size], self.buffer[batch_size:]
            self.handle(batch)
        except self.broker_errors as exc:
            logger.warning(
                "connection lost to %s (%s: %s); unacknowledged messages will be redelivered",
                self.describe(),
                type(exc).__name__,
                exc,
            )
            self._drop()
            self.failures = 1
            self.next_connect = time.monotonic() + RECONNECT.delay(self.failures)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now < self.next_housekeeping:
            return
        self.next_housekeeping = now + HOUSEKEEPING_EVERY
        purge_tombstones()

    def handle(self, batch: list[Delivery]) -> None:
        accepted: list[tuple[Delivery, TransportPayload]] = []
        for delivery in batch:
            payload = self._accept(delivery)
            if payload is not None:
                accepted.append((delivery, payload))
        held: list[Delivery] = []
        if accepted:
            started = time.perf_counter()
            try:
                results: list[BaseException | None] = self._apply(
                    [payload for _, payload in accepted], [d for d, _ in accepted]
                )
            except Exception as exc:  # never let one batch kill the worker
                if not outage.is_transient(exc):
                    logger.exception("applying a batch of %d failed", len(accepted))
                results = [exc] * len(accepted)
            if metrics.enabled:
                metrics.consumed_batch("cqrs", (p.cqrs_id for _, p in accepted), started)
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

    def _apply(
        self, payloads: list[TransportPayload], deliveries: list[Delivery]
    ) -> list[BaseException | None]:
        if not tracing.enabled:
            return consume_batch(payloads)
        attributes = {
            "messaging.batch.message_count": len(payloads),
            "messaging.cqrs.ids": sorted({p.cqrs_id for p in payloads}),
        }
        # The batch continues the trace of its first message; the others are links.
        first = deliveries[0].headers
        with tracing.process(
            self.messaging_system, str(settings.queue), first, batch=True, **attributes
        ) as span:
            _link(span, deliveries[1:])
            return consume_batch(payloads)

    def _accept(self, delivery: Delivery) -> TransportPayload | None:
        """The delivery's payload when it is one to apply; otherwise dead-letter it (None)."""
        try:
            payload = decode(delivery)
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
            metrics.dead_lettered("cqrs", "(malformed)")
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

    # -- failures --------------------------------------------------------------------------
    def _failed(self, payload: TransportPayload, error: BaseException) -> None:
        model = ReplicaRegistry.models[payload.cqrs_id]
        reason = reasons.apply_failed(payload, error)
        metrics.failed("cqrs", payload.cqrs_id)
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
        metrics.retried("cqrs", payload.cqrs_id)

    def _retry(self, payload: TransportPayload, delay: float, reason: str) -> None:
        headers = failure_headers(reason, payload.queue)
        milliseconds = int(delay * 1000)
        if milliseconds <= 0:
            self._send("", settings.QUEUE, payload.body(), headers)
            return
        delay_queue = f"{settings.QUEUE}.delay.{milliseconds}"
        if delay_queue not in self.delay_queues:
            self._declare_delay_queue(delay_queue, milliseconds)
            self.delay_queues.add(delay_queue)
        self._send("", delay_queue, payload.body(), headers)

    def _dead_letter_raw(self, body: bytes, reason: str, queue: str | None = None) -> None:
        # Straight into the queue (default exchange): routable whatever the CQRS_ID.
        ttl = replica_setting("DEAD_MESSAGE_TTL")
        expiration = int(ttl) * 1000 if ttl else None
        self._send("", dead_letter_queue(), body, failure_headers(reason, queue), expiration)

    def _dead_letter(self, payload: TransportPayload, reason: str) -> None:
        payload.is_dead_letter = True
        self._dead_letter_raw(payload.body(), reason, payload.queue)
        metrics.dead_lettered("cqrs", payload.cqrs_id)
