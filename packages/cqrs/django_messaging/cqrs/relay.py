"""The relay of stored master messages: the core relay over ``messaging_cqrs_pendingmessage``.

:class:`PendingStore` describes the table to :class:`django_messaging.core.relay.Relay`:

- **Claim** leases rows (``claimed_by``/``claimed_until``) oldest first. A row written with its
  change (``attempts`` 0) belongs to the process that wrote it until it is
  ``CQRS_OUTBOX_GRACE`` seconds old; a failed row waits until ``available_at``.
- **Per-instance order**: the ordering key is ``cqrs_id`` and ``instance_pk``; a row is never
  claimed while an earlier row of its instance is left unsent, and one at a time is in flight.
- **Mark sent** deletes the rows the broker confirmed (the table holds only unsent messages),
  in the transaction of the next claim when one follows (on PostgreSQL the delete, the claims'
  advisory lock and the claim go as one query string: one round trip).
- A row stored without a body (its process died before the broker confirmed it, see
  :mod:`.controller.staging`) is sent as the instance is now; a row whose instance is gone is
  dropped, and one whose serializer fails is rescheduled with the error.

:class:`PendingRelay` reads its policy from ``MESSAGING["CQRS"]["master"]`` and sends through
the configured transport's :meth:`~.transport.BaseTransport.relay_transport`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Hashable, Sequence
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from django_messaging.core import relay as core_relay
from django_messaging.core.serializers import get_serializer
from django_messaging.core.transports import OutgoingMessage, Transport
from django_messaging.cqrs.conf import master_setting
from django_messaging.cqrs.controller import staging
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.payloads import loaded_trace
from django_messaging.cqrs.transport import current_transport
from django_messaging.cqrs.transport.base import (
    CONFIRM_TIMEOUT,
    PayloadMessage,
    ProducingTransport,
)
from django_messaging.cqrs.transport.wire import CONTENT_TYPE, routing_key

__all__ = ["PendingRelay", "PendingStore"]

logger = logging.getLogger(__name__)

#: Columns a claimed row is read with (the others stay deferred).
_CLAIMED = (
    "id",
    "cqrs_id",
    "signal_type",
    "instance_pk",
    "queue",
    "body",
    "attempts",
    "trace_context",
)
#: PostgreSQL: claims take this advisory lock, so that one claim sees the leases of the other.
_CLAIM_LOCK = 0x6371_7273_7265_6C79  # "cqrsrely"


class PendingStore:
    """``messaging_cqrs_pendingmessage`` as a core relay store, ordered per instance."""

    ordered = True

    def __init__(self, using: str = "default", *, due_only: bool = True) -> None:
        self.using = using
        #: False: rows waiting for a retry go now too (``cqrs_pending flush``).
        self.due_only = due_only
        #: The last claim found nothing to send.
        self.drained = False

    def rows(self) -> Any:
        return PendingMessage.objects.using(self.using)

    def _sendable(self, alias: str, now: dt.datetime) -> tuple[str, list[Any]]:
        adapt = connections[self.using].ops.adapt_datetimefield_value
        grace = now - dt.timedelta(seconds=master_setting("OUTBOX_GRACE"))
        sql = (
            f"({alias}.attempts > 0 OR {alias}.created < %s) "
            f"AND ({alias}.claimed_until IS NULL OR {alias}.claimed_until < %s)"
        )
        params = [adapt(grace), adapt(now)]
        if self.due_only:
            sql += f" AND ({alias}.available_at IS NULL OR {alias}.available_at <= %s)"
            params.append(adapt(now))
        return sql, params

    def claim(self, owner: str, size: int, lease: float) -> list[PendingMessage]:
        return self.mark_sent_and_claim(owner, (), size, lease)

    def mark_sent_and_claim(
        self, owner: str, sent: Sequence[Hashable], size: int, lease: float
    ) -> list[PendingMessage]:
        """Delete the rows ``sent`` that ``owner`` holds and claim, in one transaction."""
        connection = connections[self.using]
        now = timezone.now()
        table = connection.ops.quote_name(PendingMessage._meta.db_table)
        row_ok, row_params = self._sendable("p", now)
        earlier_ok, earlier_params = self._sendable("e", now)
        # A row goes only when no earlier row of its instance must stay (leased elsewhere, in
        # flight in its own process, waiting for a retry): ordered by id, a batch holds the
        # earlier rows of every instance it holds.
        select = (
            f"SELECT p.id FROM {table} p WHERE {row_ok} AND NOT EXISTS (SELECT 1 FROM {table} e "
            "WHERE e.cqrs_id = p.cqrs_id AND e.instance_pk = p.instance_pk AND e.id < p.id "
            f"AND NOT ({earlier_ok})) ORDER BY p.id LIMIT %s"
        )
        params = [*row_params, *earlier_params, size]
        ends = now + dt.timedelta(seconds=lease)
        until = connection.ops.adapt_datetimefield_value(ends)  # for the SQL written here
        columns = ", ".join(_CLAIMED)
        update = (
            f"UPDATE {table} SET claimed_by = %s, claimed_until = %s "
            f"WHERE id IN ({select}) RETURNING {columns}"
        )
        if connection.vendor == "postgresql":
            statements: list[tuple[str, Sequence[Any]]] = []
            if sent:
                delete = f"DELETE FROM {table} WHERE id = ANY(%s) AND claimed_by = %s"
                statements.append((delete, [list(sent), owner]))
            statements.append(("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK]))
            statements.append((update, [owner, until, *params]))
            raw = sorted(core_relay.one_transaction(self.using, statements))
            self.drained = not raw
            return [PendingMessage.from_db(self.using, _CLAIMED, values) for values in raw]
        with transaction.atomic(using=self.using), connection.cursor() as cursor:
            if sent:
                self.mark_sent(owner, sent)
            if connection.vendor == "sqlite":
                cursor.execute(update, [owner, until, *params])
                raw = sorted(cursor.fetchall())
            else:
                suffix = " FOR UPDATE" if connection.features.has_select_for_update else ""
                cursor.execute(select + suffix, params)
                ids = [row[0] for row in cursor.fetchall()]
                # The ORM adapts the aware time itself: a value adapted already would be a
                # naive one, read in the project's TIME_ZONE.
                self.rows().filter(id__in=ids).update(claimed_by=owner, claimed_until=ends)
                raw = list(self.rows().filter(id__in=ids).order_by("id").values_list(*_CLAIMED))
        self.drained = not raw
        return [PendingMessage.from_db(self.using, _CLAIMED, values) for values in raw]

    def _held(self, owner: str, ids: Sequence[Hashable]) -> Any:
        return self.rows().filter(id__in=ids, claimed_by=owner)

    def renew(self, owner: str, ids: Sequence[Hashable], lease: float) -> int:
        until = timezone.now() + dt.timedelta(seconds=lease)
        return int(self._held(owner, ids).update(claimed_until=until))

    def mark_sent(self, owner: str, ids: Sequence[Hashable]) -> None:
        self._held(owner, ids)._raw_delete(self.using)

    def release(self, owner: str, ids: Sequence[Hashable] | None = None) -> int:
        rows = self.rows().filter(claimed_by=owner)
        if ids is not None:
            rows = rows.filter(id__in=ids)
        return int(rows.update(claimed_by=None, claimed_until=None))

    def reschedule(self, owner: str, retries: Sequence[core_relay.Retry]) -> None:
        for retry in retries:
            self._held(owner, retry.ids).update(
                attempts=retry.attempts,
                last_error=retry.error,
                claimed_by=None,
                claimed_until=None,
                # Never given up (no max_attempts): None would mean "now".
                available_at=retry.available_at,
            )

    def purge(self, before: dt.datetime, batch_size: int) -> int:
        return 0  # a sent row is deleted when its confirm arrives

    def row_id(self, row: PendingMessage) -> Hashable:
        return row.pk  # type: ignore[no-any-return]

    def attempts(self, row: PendingMessage) -> int:
        return int(row.attempts)

    def ordering_key(self, row: PendingMessage) -> str | None:
        return f"{row.cqrs_id}:{row.instance_pk}"

    def to_messages(
        self, rows: Sequence[PendingMessage]
    ) -> tuple[list[OutgoingMessage], dict[Hashable, str]]:
        messages: list[OutgoingMessage] = []
        bad: dict[Hashable, str] = {}
        gone: list[Hashable] = []
        serializer = get_serializer("json")
        for row in rows:
            try:
                if row.body:
                    payload = TransportPayload.from_message(
                        serializer.loads(row.body), queue=row.queue or None
                    )
                    body = row.body.encode()
                else:
                    rebuilt = self._rebuild(row)
                    if rebuilt is None:
                        gone.append(row.pk)
                        continue
                    payload, body = rebuilt, rebuilt.body()
            except Exception as exc:
                bad[row.pk] = f"{type(exc).__name__}: {exc}"
                continue
            # The trace of the save that stored it: the relay's send span continues it.
            payload.trace = loaded_trace(row.trace_context)
            messages.append(
                PayloadMessage(
                    key=row.pk,
                    destination=routing_key(payload),
                    body=body,
                    headers=dict(payload.trace) if payload.trace else {},
                    content_type=CONTENT_TYPE,
                    ordering_key=self.ordering_key(row),
                    payload=payload,
                )
            )
        if gone:
            self.rows().filter(id__in=gone)._raw_delete(self.using)
        return messages, bad

    def _rebuild(self, row: PendingMessage) -> TransportPayload | None:
        """The instance as it is now (a savepoint: a serializer's failed query must not break
        the relay's connection)."""
        try:
            with transaction.atomic(using=self.using):
                return staging.rebuild(row.cqrs_id, row.instance_pk, self.using)  # type: ignore[no-any-return]
        except Exception:
            logger.exception(
                "cqrs_id=%s pk=%s: serialization failed; the message stays stored",
                row.cqrs_id,
                row.instance_pk,
            )
            raise


class PendingRelay(core_relay.Relay[PendingMessage]):
    """``cqrs_pending run``: the core relay over :class:`PendingStore`."""

    name = "cqrs_pending relay"
    metrics_package = "cqrs"
    messaging_system = "rabbitmq"

    def __init__(
        self,
        using: str = "default",
        transport: Transport | None = None,
        *,
        interval: float = 1.0,
        due_only: bool = True,
    ) -> None:
        self.pending = PendingStore(using, due_only=due_only)
        super().__init__(self.pending, transport)
        self.using = using
        self.interval = interval
        #: Rows per claim; ``None``: ``CQRS_PENDING_FLUSH_BATCH``.
        self.batch_size: int | None = None
        self._outage = False

    def destination_of(self, row: PendingMessage) -> str:
        """The ``destination`` label of a row's metrics: its CQRS id."""
        return str(row.cqrs_id)

    def make_transport(self) -> Transport:
        transport = current_transport()
        make = getattr(transport, "relay_transport", None)
        made: Transport = make() if make is not None else ProducingTransport(transport)
        self.messaging_system = getattr(made, "messaging_system", type(self).messaging_system)
        return made

    def current_policy(self) -> core_relay.RelayPolicy:
        return core_relay.RelayPolicy(
            batch_size=self.batch_size or int(master_setting("PENDING_FLUSH_BATCH")),
            lease=float(master_setting("RELAY_CLAIM_TIMEOUT")),
            receipt_timeout=CONFIRM_TIMEOUT,
            idle_wait=self.interval,
        )

    def run_once(self) -> None:
        super().run_once()
        self.log_outage()

    def log_outage(self) -> None:
        """One line when the database goes away, one when it is back."""
        away = self.database_failures > 0
        if away and not self._outage:
            logger.warning(
                "could not read pending CQRS messages on %r; they are sent when the database is "
                "back",
                self.using,
            )
        elif self._outage and not away:
            logger.info("reading pending CQRS messages on %r again", self.using)
        self._outage = away
