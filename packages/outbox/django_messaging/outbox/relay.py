"""The relay behind ``./manage.py publish``: outbox rows to the broker, each exactly once per
successful confirmation.

It is the core relay (:mod:`django_messaging.core.relay`) over the rows of one transport of the
``Published`` table and that transport (STOMP, Kafka, AMQP: see :mod:`.transports.named`),
configured by ``MESSAGING["OUTBOX"]``, read afresh for every batch:

1. **Claim** up to ``PUBLISHED_CHUNK_SIZE`` pending rows, oldest first, with a lease of
   ``RELAY_CLAIM_TIMEOUT`` seconds renewed every third of it while the relay holds them
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, see :mod:`.managers`): rows of a relay that died
   are claimed again seconds later; two live relays never hold the same row.
2. **Send** them through the transport, persistent, each with a receipt.
3. **Mark** rows sent as their receipts arrive, so a crash re-sends only rows whose
   confirmation had not been recorded.
4. Rows left unconfirmed are released for another attempt: at once for the first three
   failures, then after ``PAUSE_FOR_RETRY``, then every ``WAIT_RETRY`` seconds.
   After ``MAXIMUM_RETRY_ATTEMPTS`` they become ``FAILED`` (logged; the admin action
   "re-send" schedules them again).

Rows with a ``key`` go in order per key: the claim skips a row while an earlier row of its key
is held by another relay, not due or given up, and the core relay has one row of a key in flight
at a time. A message the broker refuses (missing topic, unroutable) is rescheduled like a failed
send, its reason in ``last_error``.

A broker outage closes the connection: the relay stops claiming, reconnects with back-off
(capped by ``MAXIMUM_BACKOFF``) and goes on. ``expires_at`` never stops a row. Old rows
are deleted by ``outbox_purge``, not by the relay.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from typing import cast

from django.db import DEFAULT_DB_ALIAS, connections, router

from django_messaging.core import relay as core_relay
from django_messaging.core.serializers import get_serializer
from django_messaging.core.transports import OutgoingMessage, Transport
from django_messaging.outbox import connection
from django_messaging.outbox.conf import settings
from django_messaging.outbox.durable import raw_parts
from django_messaging.outbox.managers import PublishedQuerySet
from django_messaging.outbox.models import Published
from django_messaging.outbox.producers import (
    generate_headers_function,
    message_headers,
    retry_delay,
)
from django_messaging.outbox.retention import delete_in_batches
from django_messaging.outbox.transports import named

__all__ = ["PublishedStore", "Relay", "claim_batch"]


def claim_batch(
    owner: str,
    size: int,
    lease: float,
    using: str | None = None,
    transport: str = named.DEFAULT,
    sent: Sequence[Hashable] = (),
) -> list[Published]:
    """Claim up to ``size`` sendable rows of ``transport`` for ``owner``, oldest first; the
    rows ``sent`` that ``owner`` holds are marked sent in the same transaction."""
    return PublishedStore(using, transport).rows().claim(owner, size, lease, transport, sent)


class PublishedStore:
    """The rows of one transport of the outbox table as a relay store. Rows with a ``key`` are
    sent in order per key; rows without one in no particular order (as in
    django-outbox-pattern)."""

    ordered = True

    def __init__(self, using: str | None = None, transport: str = named.DEFAULT) -> None:
        self.using = using
        self.transport = transport

    @property
    def claims_ahead(self) -> bool:
        """On PostgreSQL the relay claims the next batch on a connection of its own while it
        sends the one before (see :mod:`django_messaging.core.relay`)."""
        return connections[self.alias()].vendor == "postgresql"

    def alias(self) -> str:
        return self.using or router.db_for_write(Published)

    def rows(self) -> PublishedQuerySet:
        return cast(PublishedQuerySet, Published.objects.using(self.alias()))

    def claim(self, owner: str, size: int, lease: float) -> list[Published]:
        # Through the module's function, the one name tests and tools patch.
        return claim_batch(owner, size, lease, self.using, self.transport)

    def mark_sent_and_claim(
        self, owner: str, sent: Sequence[Hashable], size: int, lease: float
    ) -> list[Published]:
        return claim_batch(owner, size, lease, self.using, self.transport, sent)

    def renew(self, owner: str, ids: Sequence[Hashable], lease: float) -> int:
        return self.rows().renew(owner, ids, lease)

    def mark_sent(self, owner: str, ids: Sequence[Hashable]) -> None:
        self.rows().mark_sent(owner, ids)

    def release(self, owner: str, ids: Sequence[Hashable] | None = None) -> int:
        return self.rows().release(owner, ids)

    def reschedule(self, owner: str, retries: Sequence[core_relay.Retry]) -> None:
        rows = self.rows()
        for retry in retries:
            rows.reschedule(owner, retry.ids, retry.attempts, retry.error, retry.available_at)

    def purge(self, before: dt.datetime, batch_size: int) -> int:
        return delete_in_batches(self.rows().sent_before(before), batch_size, dry_run=False)

    def row_id(self, row: Published) -> Hashable:
        return row.id  # type: ignore[no-any-return]

    def attempts(self, row: Published) -> int:
        return int(row.retry)

    def ordering_key(self, row: Published) -> str | None:
        return row.key  # type: ignore[no-any-return]

    def to_messages(
        self, rows: Sequence[Published]
    ) -> tuple[list[OutgoingMessage], dict[Hashable, str]]:
        messages = []
        bad: dict[Hashable, str] = {}
        serializer_name = settings.BODY_SERIALIZER
        serializer = get_serializer(serializer_name)
        content_type = getattr(serializer, "content_type", None)
        generate = generate_headers_function()
        for row in rows:
            raw = raw_parts(row.headers)
            if raw is not None:  # exact bytes, key and headers
                messages.append(
                    OutgoingMessage(
                        row.id,
                        row.destination,
                        None if row.payload is None else bytes(row.payload),
                        ordering_key=row.key,
                        raw_key=raw[0],
                        raw_headers=raw[1],
                    )
                )
                continue
            try:
                raw_json = getattr(row, "_body_json", None)
                if raw_json is not None and serializer_name == "json":
                    body = raw_json.encode()
                else:
                    body = serializer.dumps(row.body)
                headers = message_headers(row, generate)
            except Exception as exc:
                bad[row.id] = f"cannot encode the message: {exc!r}"
                continue
            messages.append(
                OutgoingMessage(
                    row.id, row.destination, body, headers, content_type, ordering_key=row.key
                )
            )
        return messages, bad


class Relay(core_relay.Relay[Published]):
    name = "outbox relay"
    metrics_package = "outbox"
    messaging_system = "rabbitmq"
    #: Batches in flight at once: the next batch is claimed and written while the broker
    #: confirms the previous one.
    window = 2

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        batch_size: int | None = None,
        using: str | None = None,
        transport_name: str = named.DEFAULT,
    ) -> None:
        super().__init__(PublishedStore(using, transport_name), transport)
        self.batch_size = batch_size
        self.using = using
        self.transport_name = transport_name
        named_by = [transport_name] if transport_name != named.DEFAULT else []
        if using is not None and using != DEFAULT_DB_ALIAS:
            named_by.append(f"database {using}")
        if named_by:
            self.name = f"outbox relay ({', '.join(named_by)})"

    def make_transport(self) -> Transport:
        return named.make_transport(self.transport_name)

    def current_policy(self) -> core_relay.RelayPolicy:
        return core_relay.RelayPolicy(
            batch_size=self.batch_size or int(settings.PUBLISHED_CHUNK_SIZE),
            window=self.window,
            lease=float(settings.RELAY_CLAIM_TIMEOUT),
            receipt_timeout=float(settings.RECEIPT_TIMEOUT),
            idle_wait=float(settings.PRODUCER_WAITING_TIME),
            max_attempts=int(settings.MAXIMUM_RETRY_ATTEMPTS),
            retry=retry_delay,
            reconnect=connection.reconnect_backoff(),
        )
