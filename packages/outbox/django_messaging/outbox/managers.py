"""The relay's statements on the outbox table, one method each, per database vendor.

``claim`` is one short statement on PostgreSQL and SQLite:
``UPDATE … WHERE id IN (SELECT … ORDER BY added LIMIT n FOR UPDATE SKIP LOCKED)``. SQLite has no
row locks but runs each write statement under its database write lock, so the same statement
(without ``FOR UPDATE``) is just as exclusive. Other databases with ``SKIP LOCKED`` (MySQL,
MariaDB) lock, then mark, in one transaction.

``claim(sent=ids)`` first marks the rows ``ids`` sent, in the claim's transaction: one commit
per batch. On PostgreSQL the mark, the claims' advisory lock and the claim go to the server as
one query string (see :func:`django_messaging.core.relay.one_transaction`): one round trip.
There, every statement of the relay reads through indexes (``by_index``): the claim walks the
index of unsent rows in order and stops at its ``LIMIT``, the others find rows by primary key, also
while a backlog is relayed before the table's first ``ANALYZE``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import orjson
from django.db import connections, models, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from django_messaging.core.relay import one_transaction
from django_messaging.outbox.choices import StatusChoice

_RETURNED = ("id", "destination", "version", "body", "headers", "retry", "key", "payload", "added")
#: The columns a claimed row is built from, in the model's field order (as ``from_db`` expects).
_LOADED = [
    "id",
    "version",
    "destination",
    "body",
    "headers",
    "retry",
    "claimed_by",
    "transport",
    "key",
    "payload",
]
#: Serializes the claims of relays on PostgreSQL (``pg_advisory_xact_lock``): a claim sees every
#: row the claims before it took, so it never takes a row whose key has an earlier row in flight.
_CLAIM_LOCK = 0x6D73676F7574  # "msgout"


def _loader(model: type[models.Model], using: str) -> Callable[[list[Any]], Any]:
    """Build a claimed row of ``model`` from the ``_LOADED`` columns' values, as
    ``model.from_db`` does: no field defaults computed, the other columns deferred. Where no
    ``pre_init`` or ``post_init`` receiver listens to the model (the usual case), the instance
    is filled in directly: a fifth of ``from_db``'s cost, for the 500 rows of every claim."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return lambda values: model.from_db(using, _LOADED, values)
    columns = {field.name: field.attname for field in model._meta.concrete_fields}
    attnames = [columns[name] for name in _LOADED]

    def loaded(values: list[Any]) -> Any:
        row = model.__new__(model)
        row.__dict__.update(zip(attnames, values, strict=True))
        state = row._state = ModelState()
        state.adding = False
        state.db = using
        return row

    return loaded


def _uuid_array(ids: Sequence[Hashable]) -> str:
    """``ids`` as one PostgreSQL array literal: one bound value instead of one per row, so the
    statement is built and sent in constant time whatever the batch size."""
    return "{" + ",".join(map(str, ids)) + "}"


class PublishedQuerySet(models.QuerySet):
    def _alias(self) -> str:
        """The database these statements go to: the one chosen with ``using()``, or the
        router's database for writes."""
        chosen: str | None = self._db  # type: ignore[attr-defined]
        return chosen or router.db_for_write(self.model)

    def claim(
        self,
        owner: str,
        size: int,
        lease: float,
        transport: str = "default",
        sent: Sequence[Hashable] = (),
    ) -> list[Any]:
        """Lease up to ``size`` sendable rows of ``transport`` to ``owner`` for ``lease``
        seconds; oldest first. The rows ``sent`` (held by ``owner``) are marked sent first, in
        the same transaction.

        A row with a ``key`` is taken only when no earlier unsent row of the same transport and
        key stands in its way: one leased to another relay, not yet due, or given up (FAILED).
        Earlier rows that can go are older, so they come first in the same claim.

        Each returned row carries its body as stored JSON text in ``_body_json``, so a JSON body
        goes to the broker without being decoded and encoded again.
        """
        using = self._alias()
        connection = connections[using]
        now = timezone.now()
        opts = self.model._meta
        table = connection.ops.quote_name(opts.db_table)
        col = {f.name: connection.ops.quote_name(f.column or f.name) for f in opts.concrete_fields}
        adapt = connection.ops.adapt_datetimefield_value
        vendor = connection.vendor
        if vendor not in ("postgresql", "sqlite"):
            return self._claim_locking(using, owner, size, lease, transport, sent)
        p = {name: f"p.{c}" for name, c in col.items()}
        q = {name: f"q.{c}" for name, c in col.items()}
        # The statuses are written in the text, and "NOT (status = sent)" as the partial
        # indexes' condition reads: SQLite uses a partial index only for a query that repeats
        # its condition, PostgreSQL only for one it can prove it from.
        scheduled, unsent = int(StatusChoice.SCHEDULE), f"NOT (%s = {int(StatusChoice.SUCCEEDED)})"
        pending = (
            f"{p['status']} = {scheduled} AND {unsent % p['status']} "
            f"AND {p['transport']} = %s AND {p['available_at']} <= %s "
            f"AND ({p['claimed_until']} IS NULL OR {p['claimed_until']} < %s) "
            f"AND ({p['key']} IS NULL OR NOT EXISTS (SELECT 1 FROM {table} q "
            f"WHERE {q['key']} = {p['key']} AND {q['transport']} = {p['transport']} "
            f"AND {unsent % q['status']} AND ({q['added']} < {p['added']} "
            f"OR ({q['added']} = {p['added']} AND {q['id']} < {p['id']})) "
            f"AND ({q['claimed_by']} IS NULL OR {q['claimed_by']} <> %s) "
            f"AND ({q['status']} <> {scheduled} OR {q['available_at']} > %s "
            f"OR {q['claimed_until']} >= %s)))"
        )
        params: list[Any] = [transport, adapt(now), adapt(now), owner, adapt(now), adapt(now)]
        lock = " FOR UPDATE OF p SKIP LOCKED" if vendor == "postgresql" else ""
        returning = ", ".join(col[name] for name in _RETURNED)
        chosen = (
            f"SELECT {p['id']} FROM {table} p WHERE {pending} "
            f"ORDER BY {p['added']}, {p['id']} LIMIT %s{lock}"
        )
        # PostgreSQL: the chosen ids as an array, so the UPDATE finds each by its primary key;
        # "IN (subquery)" may be planned as a join that reads the whole table every claim.
        among_chosen = f"= ANY(ARRAY({chosen}))" if vendor == "postgresql" else f"IN ({chosen})"
        sql = (
            f"UPDATE {table} SET {col['claimed_by']} = %s, {col['claimed_until']} = %s "
            f"WHERE {col['id']} {among_chosen} RETURNING {returning}"
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
        until = adapt(now + dt.timedelta(seconds=lease))
        statements: list[tuple[str, Sequence[Any]]] = []
        if vendor == "postgresql":
            if sent:
                statements.append(self._mark_sent_statement(table, owner, sent))
            statements.append(("SELECT pg_advisory_xact_lock(%s)", [_CLAIM_LOCK]))
            statements.append((sql, [owner, until, *params, size]))
            raw = one_transaction(using, statements, by_index=True)
        else:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                if sent:
                    self.mark_sent(owner, sent)
                cursor.execute(sql, [owner, until, *params, size])
                raw = cursor.fetchall()
            raw.sort(key=lambda r: (r[8], str(r[0])))
        rows = []
        loaded = _loader(self.model, using)
        for pk, destination, version, body, headers, retry, key, payload, _added in raw:
            body_text = body if isinstance(body, str) else json.dumps(body)
            header_values = orjson.loads(headers) if isinstance(headers, str) else headers
            row = loaded(
                [
                    pk if isinstance(pk, uuid.UUID) else uuid.UUID(str(pk)),
                    version,
                    destination,
                    orjson.loads(body_text),
                    header_values or {},
                    retry,
                    owner,
                    transport,
                    key,
                    None if payload is None else bytes(payload),
                ]
            )
            row._body_json = body_text
            rows.append(row)
        return rows

    def _claim_locking(
        self,
        using: str,
        owner: str,
        size: int,
        lease: float,
        transport: str,
        sent: Sequence[Hashable] = (),
    ) -> list[Any]:
        # Claims one at a time (a named lock), as on PostgreSQL: each sees the rows the claims
        # before it took, so a row never goes while an earlier row of its key is held elsewhere.
        lock = f"{self.model._meta.db_table}_claim"
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 30)", [lock])
        try:
            return self._claim_rows(using, owner, size, lease, transport, sent)
        finally:
            with connections[using].cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", [lock])

    def _claim_rows(
        self,
        using: str,
        owner: str,
        size: int,
        lease: float,
        transport: str,
        sent: Sequence[Hashable] = (),
    ) -> list[Any]:
        now = timezone.now()
        until = now + dt.timedelta(seconds=lease)
        rows = self.model.objects.using(using)
        in_the_way = (
            rows.filter(
                key=OuterRef("key"), transport=OuterRef("transport"), added__lte=OuterRef("added")
            )
            .exclude(status=StatusChoice.SUCCEEDED)
            .exclude(id=OuterRef("id"))
            .exclude(claimed_by=owner)
            .filter(
                Q(status=StatusChoice.FAILED) | Q(available_at__gt=now) | Q(claimed_until__gte=now)
            )
        )
        with transaction.atomic(using=using):
            if sent:
                self.using(using).mark_sent(owner, sent)
            ids = list(
                rows.select_for_update(skip_locked=True)
                .filter(status=StatusChoice.SCHEDULE, available_at__lte=now, transport=transport)
                .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
                .filter(Q(key__isnull=True) | ~Exists(in_the_way))
                .order_by("added", "id")
                .values_list("id", flat=True)[:size]
            )
            if not ids:
                return []
            self.model.objects.using(using).filter(id__in=ids).update(
                claimed_by=owner, claimed_until=until
            )
        return list(
            self.model.objects.using(using)
            .filter(id__in=ids, claimed_by=owner, status=StatusChoice.SCHEDULE)
            .order_by("added", "id")
        )

    def held_by(self, owner: str) -> PublishedQuerySet:
        return self.using(self._alias()).filter(claimed_by=owner, status=StatusChoice.SCHEDULE)

    def renew(self, owner: str, ids: Sequence[Hashable], lease: float) -> int:
        """Extend the lease of the rows ``ids`` that ``owner`` still holds."""
        until = timezone.now() + dt.timedelta(seconds=lease)
        using = self._alias()
        connection = connections[using]
        if connection.vendor != "postgresql":
            return self.held_by(owner).filter(id__in=ids).update(claimed_until=until)
        table = connection.ops.quote_name(self.model._meta.db_table)
        renewed = one_transaction(
            using,
            [
                (
                    f"UPDATE {table} SET claimed_until = %s "
                    "WHERE id = ANY(%s::uuid[]) AND claimed_by = %s AND status = %s "
                    "RETURNING 1",
                    [until, _uuid_array(ids), owner, StatusChoice.SCHEDULE],
                )
            ],
            by_index=True,
        )
        return len(renewed)

    def _mark_sent_statement(
        self, table: str, owner: str, ids: Sequence[Hashable]
    ) -> tuple[str, list[Any]]:
        """PostgreSQL: the rows ``ids`` that ``owner`` holds are sent."""
        return (
            f"UPDATE {table} SET status = %s, sent_at = %s, claimed_by = NULL, "
            "claimed_until = NULL, last_error = '' "
            "WHERE id = ANY(%s::uuid[]) AND claimed_by = %s",
            [StatusChoice.SUCCEEDED, timezone.now(), _uuid_array(ids), owner],
        )

    def mark_sent(self, owner: str, ids: Sequence[Hashable]) -> None:
        using = self._alias()
        connection = connections[using]
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(self.model._meta.db_table)
            one_transaction(using, [self._mark_sent_statement(table, owner, ids)], by_index=True)
            return
        self.using(using).filter(id__in=ids, claimed_by=owner).update(
            status=StatusChoice.SUCCEEDED,
            sent_at=timezone.now(),
            claimed_by=None,
            claimed_until=None,
            last_error="",
        )

    def release(self, owner: str, ids: Sequence[Hashable] | None = None) -> int:
        rows = self.held_by(owner)
        if ids is not None:
            if not ids:
                return 0
            rows = rows.filter(id__in=ids)
        return rows.update(claimed_by=None, claimed_until=None)

    def reschedule(
        self,
        owner: str,
        ids: Sequence[Hashable],
        attempts: int,
        error: str,
        available_at: dt.datetime | None,
    ) -> int:
        """Count a failed attempt; ``available_at=None``: the rows are ``FAILED``."""
        changes: dict[str, Any] = (
            {"status": StatusChoice.FAILED}
            if available_at is None
            else {"available_at": available_at}
        )
        return (
            self.using(self._alias())
            .filter(id__in=ids, claimed_by=owner)
            .update(
                retry=attempts, last_error=error, claimed_by=None, claimed_until=None, **changes
            )
        )

    def sent_before(self, cutoff: dt.datetime) -> PublishedQuerySet:
        """Rows sent before ``cutoff`` (by ``added`` for rows sent before ``sent_at`` existed)."""
        return self.filter(status=StatusChoice.SUCCEEDED).filter(
            Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True, added__lt=cutoff)
        )
