"""The relay behind ``./manage.py publish``: outbox rows to the broker, each exactly once per
successful confirmation.

One batch:

1. **Claim** up to ``DEFAULT_PUBLISHED_CHUNK_SIZE`` pending rows, oldest first, in one short
   statement: ``UPDATE … WHERE id IN (SELECT … ORDER BY added LIMIT n FOR UPDATE SKIP LOCKED)``
   on PostgreSQL. SQLite has no row locks but runs each write statement under its database
   write lock, so the same single statement (without ``FOR UPDATE``) is just as exclusive. A
   claim is a lease (``claimed_by`` / ``claimed_until``) of ``DEFAULT_RELAY_CLAIM_TIMEOUT``
   seconds that the relay renews every third of it while it holds rows, so the lease can be
   short: rows of a relay that died are claimed again seconds later. Two live relays never
   hold the same row.
2. **Send** them through the transport, persistent, each with a receipt.
3. **Mark** rows sent as their receipts arrive (one ``UPDATE … WHERE id IN`` per group of
   receipts), so a crash re-sends only rows whose confirmation had not been recorded.
4. Rows left unconfirmed are released for another attempt: at once for the first three
   failures, then after ``DEFAULT_PAUSE_FOR_RETRY``, then every ``DEFAULT_WAIT_RETRY`` seconds.
   After ``DEFAULT_MAXIMUM_RETRY_ATTEMPTS`` they become ``FAILED`` (logged; the admin action
   "re-send" schedules them again).

A broker outage closes the connection: the relay stops claiming, reconnects with exponential
backoff (capped by ``DEFAULT_MAXIMUM_BACKOFF``) and goes on. ``expires_at`` never stops a row.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Hashable
from typing import Any

import orjson
from django import db
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from django_messaging.core.serializers import get_serializer
from django_messaging.core.worker import Worker
from django_messaging.outbox import connection
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.conf import settings
from django_messaging.outbox.models import Published
from django_messaging.outbox.producers import (
    generate_headers_function,
    message_headers,
    retry_delay,
)
from django_messaging.core.transports import OutgoingMessage, Transport

logger = logging.getLogger(__name__)


_RETURNED = ("id", "destination", "version", "body", "headers", "retry", "added")


def claim_batch(owner: str, size: int, lease: float, using: str | None = None) -> list[Published]:
    """Claim up to ``size`` sendable rows for ``owner`` and return them, oldest first.

    Each returned row carries its body as stored JSON text in ``_body_json``, so a JSON body
    goes to the broker without being decoded and encoded again.
    """
    using = using or router.db_for_write(Published)
    connection = connections[using]
    now = timezone.now()
    table = connection.ops.quote_name(Published._meta.db_table)
    col = {
        f.name: connection.ops.quote_name(f.column or f.name)
        for f in Published._meta.concrete_fields
    }
    adapt = connection.ops.adapt_datetimefield_value
    pending = (
        f"{col['status']} = %s AND {col['available_at']} <= %s "
        f"AND ({col['claimed_until']} IS NULL OR {col['claimed_until']} < %s)"
    )
    params: list[Any] = [StatusChoice.SCHEDULE, adapt(now), adapt(now)]
    until = adapt(now + dt.timedelta(seconds=lease))
    vendor = connection.vendor
    if vendor in ("postgresql", "sqlite"):
        lock = " FOR UPDATE SKIP LOCKED" if vendor == "postgresql" else ""
        returning = ", ".join(col[name] for name in _RETURNED)
        sql = (
            f"UPDATE {table} SET {col['claimed_by']} = %s, {col['claimed_until']} = %s "
            f"WHERE {col['id']} IN (SELECT {col['id']} FROM {table} WHERE {pending} "
            f"ORDER BY {col['added']}, {col['id']} LIMIT %s{lock}) RETURNING {returning}"
        )
        if vendor == "postgresql":
            # Ordered by the database; the body comes back as JSON text, never decoded here.
            selected = ", ".join(
                f"{col[name]}::text" if name == "body" else col[name] for name in _RETURNED[:-1]
            )
            sql = (
                f"WITH claimed AS ({sql}) SELECT {selected}, NULL "
                f"FROM claimed ORDER BY {col['added']}, {col['id']}"
            )
        with connection.cursor() as cursor:
            cursor.execute(sql, [owner, until, *params, size])
            raw = cursor.fetchall()
        if vendor != "postgresql":
            raw.sort(key=lambda r: (r[6], str(r[0])))
        rows = []
        # in the model's field order, as from_db expects
        names = ["id", "version", "destination", "body", "headers", "retry", "claimed_by"]
        for pk, destination, version, body, headers, retry, _added in raw:
            body_text = body if isinstance(body, str) else json.dumps(body)
            header_values = orjson.loads(headers) if isinstance(headers, str) else headers
            # from_db: no field defaults computed, the other columns stay deferred.
            row = Published.from_db(
                using,
                names,
                [
                    pk if isinstance(pk, uuid.UUID) else uuid.UUID(str(pk)),
                    version,
                    destination,
                    orjson.loads(body_text),
                    header_values or {},
                    retry,
                    owner,
                ],
            )
            row._body_json = body_text  # type: ignore[attr-defined]
            rows.append(row)
        return rows
    # MySQL/MariaDB and others with SKIP LOCKED: lock, then mark, in one transaction.
    with transaction.atomic(using=using):
        ids = list(
            Published.objects.using(using)
            .select_for_update(skip_locked=True)
            .extra(where=[pending], params=params)
            .order_by("added", "id")
            .values_list("id", flat=True)[:size]
        )
        if not ids:
            return []
        Published.objects.using(using).filter(id__in=ids).update(
            claimed_by=owner, claimed_until=now + dt.timedelta(seconds=lease)
        )
    return list(
        Published.objects.using(using)
        .filter(claimed_by=owner, status=StatusChoice.SCHEDULE)
        .order_by("added", "id")
    )


class Relay(Worker):
    name = "outbox relay"
    #: Batches in flight at once: the next batch is claimed and written while the broker
    #: confirms the previous one.
    window = 2

    def __init__(
        self,
        transport: Transport | None = None,
        *,
        batch_size: int | None = None,
        using: str | None = None,
    ) -> None:
        self.transport = transport
        self.batch_size = batch_size
        self.using = using
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.sent = 0
        self._inflight: dict[Hashable, tuple[Published, float]] = {}
        #: Confirmed by the broker, not yet recorded in the database (it may be down): kept
        #: until recorded, never sent again by this relay.
        self._confirmed: set[Hashable] = set()
        self._next_renewal = 0.0
        self._short_batch = False
        self._connect_failures = 0
        self._next_connect = 0.0

    # Worker -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.transport is None:
            from django_messaging.outbox.transports.stomp import StompTransport

            self.transport = StompTransport()
        logger.info("relay %s starting", self.owner)

    def stop(self) -> None:
        """Wait (bounded) for the receipts of what is in flight, then give back the rest."""
        if self._inflight and self.transport is not None:
            deadline = time.monotonic() + float(settings.DEFAULT_RECEIPT_TIMEOUT)
            try:
                while self._inflight and time.monotonic() < deadline:
                    if not self._collect(0.5):
                        break
            except DatabaseError as exc:
                logger.error("relay %s: database error while stopping: %s", self.owner, exc)
        if self._confirmed:
            try:
                self._record_confirmed()
            except DatabaseError as exc:
                logger.error(
                    "relay %s: %d confirmed messages not recorded as sent (database error: "
                    "%s); they will be sent again",
                    self.owner,
                    len(self._confirmed),
                    exc,
                )
        if self._inflight:
            self._fail_inflight("relay stopped before the broker confirmed")
        released = self._release_all()
        if released:
            logger.info("relay %s released %d claimed rows", self.owner, released)
        if self.transport is not None:
            self.transport.close()
        logger.info("relay %s stopped: %d messages confirmed by the broker", self.owner, self.sent)

    def run_once(self) -> None:
        try:
            self._run_once()
        except DatabaseError as exc:
            # The database went away (restart, failover): confirmations received meanwhile are
            # kept and recorded once it is back; the next unit reconnects.
            logger.error(
                "relay %s: database error, retrying shortly (%d confirmed messages waiting to be "
                "recorded): %s",
                self.owner,
                len(self._confirmed),
                exc,
            )
            db.close_old_connections()
            time.sleep(min(float(settings.DEFAULT_PRODUCER_WAITING_TIME) * 10, 1.0))

    def _run_once(self) -> None:
        if self._confirmed:
            self._record_confirmed()  # before anything else: the database is back
        if not self._ensure_open():
            return
        size = self.batch_size or int(settings.DEFAULT_PUBLISHED_CHUNK_SIZE)
        claimed = 0
        # After a short batch the backlog is drained: collect receipts before claiming again.
        drained = self._short_batch and bool(self._inflight)
        if len(self._inflight) < size * self.window and not drained:
            rows = claim_batch(
                self.owner, size, float(settings.DEFAULT_RELAY_CLAIM_TIMEOUT), self.using
            )
            self._short_batch = len(rows) < size
            if rows:
                claimed = len(rows)
                self._send(rows)
        if self._inflight:
            full = len(self._inflight) >= size * self.window
            self._collect(0.0 if claimed and not full else 0.2)
        elif not claimed:
            time.sleep(min(float(settings.DEFAULT_PRODUCER_WAITING_TIME), 1.0))

    # one batch ----------------------------------------------------------------------------
    def send_rows(self, rows: list[Published]) -> None:
        """Send ``rows`` (claimed by this relay) and wait for their receipts."""
        self._send(rows)
        deadline = time.monotonic() + float(settings.DEFAULT_RECEIPT_TIMEOUT) + 1
        while self._inflight and time.monotonic() < deadline:
            if not self._collect(0.5):
                break

    def _send(self, rows: list[Published]) -> None:
        assert self.transport is not None
        messages = []
        bad: dict[Hashable, str] = {}
        serializer_name = settings.DEFAULT_BODY_SERIALIZER
        serializer = get_serializer(serializer_name)
        content_type = getattr(serializer, "content_type", None)
        generate = generate_headers_function()
        for row in rows:
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
            messages.append(OutgoingMessage(row.id, row.destination, body, headers, content_type))
        now = time.monotonic()
        for row in rows:
            if row.id not in bad:
                self._inflight[row.id] = (row, now)
        unsent = self.transport.send(messages)
        if bad:
            self._reschedule([r for r in rows if r.id in bad], bad)
        if unsent:  # never written: back to the queue without counting an attempt
            for key in unsent:
                self._inflight.pop(key, None)
            self._release(list(unsent))
            self._collect(0.0)

    def _collect(self, timeout: float) -> bool:
        """Mark confirmed rows sent; False when the connection is gone or receipts are late."""
        assert self.transport is not None
        self._renew_claims()
        polled = self.transport.poll(timeout)
        for key in polled.confirmed:
            if self._inflight.pop(key, None) is not None:
                self._confirmed.add(key)
        if self._confirmed:
            self._record_confirmed()
        if polled.lost:
            self._fail_inflight(polled.error or "connection lost", polled.rejected)
            return False
        if self._inflight:
            oldest = min(sent_at for _, sent_at in self._inflight.values())
            if time.monotonic() - oldest > float(settings.DEFAULT_RECEIPT_TIMEOUT):
                self._fail_inflight(f"no receipt within {settings.DEFAULT_RECEIPT_TIMEOUT}s")
                return False
        return True

    def _fail_inflight(self, error: str, rejected: list[Hashable] | None = None) -> None:
        """Give back the rows in flight. When the broker named the messages it refused, only
        those count a failed attempt; the others go again at once, unpenalised."""
        rows = [row for row, _ in self._inflight.values()]
        self._inflight.clear()
        if rows:
            logger.warning(
                "relay: %d messages not confirmed (%s); they will be retried", len(rows), error
            )
            if rejected:
                blamed = set(rejected)
                self._reschedule([r for r in rows if r.id in blamed], {r.id: error for r in rows})
                self._release([r.id for r in rows if r.id not in blamed])
            else:
                self._reschedule(rows, {row.id: error for row in rows})
        if self.transport is not None:
            self.transport.close()

    def _release(self, ids: list[Any]) -> None:
        if ids:
            Published.objects.using(self._db()).filter(id__in=ids, claimed_by=self.owner).update(
                claimed_by=None, claimed_until=None
            )

    def _renew_claims(self) -> None:
        """Extend the lease of the rows this relay holds (in flight or confirmed, not yet
        recorded), every third of ``DEFAULT_RELAY_CLAIM_TIMEOUT``."""
        now = time.monotonic()
        if now < self._next_renewal:
            return
        lease = float(settings.DEFAULT_RELAY_CLAIM_TIMEOUT)
        self._next_renewal = now + lease / 3
        held = len(self._inflight) + len(self._confirmed)
        if not held:
            return
        try:
            renewed = (
                Published.objects.using(self._db())
                .filter(claimed_by=self.owner, status=StatusChoice.SCHEDULE)
                .update(claimed_until=timezone.now() + dt.timedelta(seconds=lease))
            )
        except DatabaseError as exc:
            logger.warning(
                "relay %s could not renew its claims on %d rows: %s", self.owner, held, exc
            )
            return
        if renewed < held:
            logger.warning(
                "relay %s renewed %d of the %d rows it holds: the others' leases ended (paused "
                "longer than DEFAULT_RELAY_CLAIM_TIMEOUT?) and another relay may send them too",
                self.owner,
                renewed,
                held,
            )

    def _record_confirmed(self) -> None:
        """Mark the confirmed rows sent; on a database error they stay confirmed, to be
        recorded on the next attempt."""
        keys = list(self._confirmed)
        self._mark_sent(keys)
        self._confirmed.difference_update(keys)
        self.sent += len(keys)

    def _mark_sent(self, keys: list[Hashable]) -> None:
        using = self._db()
        connection = connections[using]
        if connection.vendor == "postgresql":
            # One array parameter instead of one bound value per row: the statement is built
            # and sent in constant time whatever the batch size.
            table = connection.ops.quote_name(Published._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET status = %s, sent_at = %s, claimed_by = NULL, "
                    "claimed_until = NULL, last_error = '' "
                    "WHERE id = ANY(%s::uuid[]) AND claimed_by = %s",
                    [
                        StatusChoice.SUCCEEDED,
                        timezone.now(),
                        "{" + ",".join(map(str, keys)) + "}",
                        self.owner,
                    ],
                )
            return
        Published.objects.using(using).filter(id__in=keys, claimed_by=self.owner).update(
            status=StatusChoice.SUCCEEDED,
            sent_at=timezone.now(),
            claimed_by=None,
            claimed_until=None,
            last_error="",
        )

    def _reschedule(self, rows: list[Published], errors: dict[Hashable, str]) -> None:
        now = timezone.now()
        maximum = int(settings.DEFAULT_MAXIMUM_RETRY_ATTEMPTS)
        groups: dict[tuple[int, str], list[Any]] = defaultdict(list)
        for row in rows:
            groups[(row.retry + 1, errors[row.id][:2000])].append(row.id)
        manager = Published.objects.using(self._db())
        for (attempts, error), ids in groups.items():
            if attempts >= maximum:
                logger.error(
                    "relay: %d message(s) failed %d times and are now FAILED (re-send them from "
                    "the admin): %s",
                    len(ids),
                    attempts,
                    error,
                )
                changes: dict[str, Any] = {"status": StatusChoice.FAILED}
            else:
                changes = {"available_at": now + dt.timedelta(seconds=retry_delay(attempts))}
            manager.filter(id__in=ids, claimed_by=self.owner).update(
                retry=attempts, last_error=error, claimed_by=None, claimed_until=None, **changes
            )

    def _release_all(self) -> int:
        try:
            return (
                Published.objects.using(self._db())
                .filter(claimed_by=self.owner, status=StatusChoice.SCHEDULE)
                .update(claimed_by=None, claimed_until=None)
            )
        except Exception:
            logger.warning("relay %s could not release its claims", self.owner, exc_info=True)
            return 0

    def _db(self) -> str:
        return self.using or router.db_for_write(Published)

    def _ensure_open(self) -> bool:
        assert self.transport is not None
        if self.transport.is_open():
            return True
        if self._inflight:
            self._collect(0.0)  # picks up what the broker confirmed or refused before the loss
        if self._inflight:
            self._fail_inflight("connection lost")
        now = time.monotonic()
        if now < self._next_connect:
            time.sleep(min(self._next_connect - now, 0.5))
            return False
        try:
            self.transport.open()
        except Exception as exc:
            self._connect_failures += 1
            delay = connection.reconnect_backoff().delay(self._connect_failures)
            self._next_connect = time.monotonic() + delay
            logger.warning(
                "relay cannot reach the broker (attempt %d), retrying in %.1fs: %s",
                self._connect_failures,
                delay,
                exc,
            )
            return False
        if self._connect_failures:
            logger.info("relay reconnected after %d failed attempts", self._connect_failures)
        self._connect_failures = 0
        return True
