"""Store-and-forward of the master's messages (``messaging_cqrs_pendingmessage``).

In the default mode (``CQRS_PUBLISH_CONFIRMS = "outbox"``) a change's message is written inside
the change's own transaction (:func:`stage`, or the save's own statement: see :mod:`.staging`),
and its row deleted once the broker has confirmed it (in batches, :func:`delete_confirmed`). A
process killed after the commit leaves the row behind; once it is ``CQRS_OUTBOX_GRACE`` seconds
old, :func:`flush_pending` sends it.

A message the transport could not publish (broker down, refused, no confirm) is written here in
the database the change was written to (:func:`store`, :func:`failed`), and sent later, oldest
first: after the next successful publish of the process, by ``cqrs_pending flush`` or by the
``cqrs_pending run`` relay. The publisher thread (:mod:`.publisher`) reports its confirms here.
(Which mode a message travels in is decided in :mod:`django_messaging.cqrs.publishing`.)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import DatabaseError, connections
from django.utils import timezone

from django_messaging.core import metrics
from django_messaging.core.reconnect import Backoff, database_outage
from django_messaging.cqrs.controller import pending_row
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.payloads import stored_trace

logger = logging.getLogger(__name__)

#: Aliases whose pending table may hold rows (unknown at start: checked once per process).
_maybe_pending: dict[str, bool] = {}
_flush_lock = threading.Lock()
#: alias -> ids of stored rows whose message the broker confirmed (deleted in batches).
_confirmed: dict[str, list[int]] = {}
_confirmed_lock = threading.Lock()
_last_delete = [0.0]
#: Aliases whose pending messages could not be read (the outage is logged once).
_flush_failing: set[str] = set()
DELETE_BATCH = 200
DELETE_EVERY = 0.5  # seconds


def stage(payload: TransportPayload, using: str) -> None:
    """Store ``payload`` in the current transaction of ``using`` (it commits with the change);
    with an ``outbox_id``, rewrite that row."""
    from django_messaging.cqrs.models import PendingMessage

    body = payload.body().decode()
    payload.origin_db = using
    if payload.outbox_id is not None:
        PendingMessage.objects.using(using).filter(pk=payload.outbox_id).update(body=body)
        return
    # One plain INSERT: this runs inside every save of a master model.
    connection = connections[using]
    ops = connection.ops
    table = ops.quote_name(PendingMessage._meta.db_table)
    columns = pending_row.column_list(ops.quote_name)
    sql = f"INSERT INTO {table} ({columns}) VALUES {pending_row.NEW_ROW}"
    created = ops.adapt_datetimefield_value(timezone.now())
    params = [
        created,
        payload.cqrs_id,
        payload.signal_type.value,
        str(payload.pk),
        payload.queue or "",
        body,
        stored_trace(payload),
    ]
    returning = connection.features.can_return_columns_from_insert
    with connection.cursor() as cursor:
        if returning:
            cursor.execute(f"{sql} RETURNING {ops.quote_name('id')}", params)
            payload.outbox_id = cursor.fetchone()[0]
        else:
            cursor.execute(sql, params)
            payload.outbox_id = cursor.lastrowid


def maybe_pending(using: str) -> bool:
    """False once this process saw no stored message on ``using`` and stored none since."""
    return _maybe_pending.get(using, True)


def discard(outbox_id: int, using: str) -> None:
    """Delete a stored message that turned out not to be published (see signals)."""
    from django_messaging.cqrs.models import PendingMessage

    PendingMessage.objects.using(using).filter(pk=outbox_id)._raw_delete(using)


def confirmed(payloads: list[TransportPayload]) -> None:
    if metrics.enabled:
        for payload in payloads:
            metrics.produced("cqrs", payload.cqrs_id)
    with _confirmed_lock:
        for payload in payloads:
            if payload.outbox_id is not None:
                _confirmed.setdefault(payload.origin_db or "default", []).append(payload.outbox_id)


def delete_confirmed(force: bool = False) -> int:
    """Delete the rows of confirmed messages (every DELETE_BATCH rows or DELETE_EVERY seconds).

    When the database cannot take the delete, the ids are kept and the delete is tried again
    later (with a growing delay, and at once when ``force``); the outage is logged once.
    """
    from django_messaging.cqrs.models import PendingMessage

    if not _confirmed:
        return 0  # read without the lock: a batch added meanwhile waits for the next call
    now = time.monotonic()
    with _confirmed_lock:
        total = sum(len(ids) for ids in _confirmed.values())
        due = now >= _delete_outage.retry_at and (
            total >= DELETE_BATCH or now - _last_delete[0] >= DELETE_EVERY
        )
        if not total or not (force or due):
            return 0
        batches = {alias: ids for alias, ids in _confirmed.items() if ids}
        _confirmed.clear()
        _last_delete[0] = now
    deleted = 0
    for alias, ids in batches.items():
        try:
            PendingMessage.objects.using(alias).filter(pk__in=ids)._raw_delete(alias)
        except DatabaseError as exc:
            with _confirmed_lock:
                _confirmed.setdefault(alias, [])[:0] = ids  # recorded once it is back
            _delete_outage.failed(alias, len(ids), exc)
            continue
        deleted += len(ids)
        _delete_outage.recovered(alias, len(ids))
    return deleted


class _DeleteOutage:
    """Confirmed rows the database could not delete: one log line per outage, a growing delay."""

    RETRY = Backoff(initial=0.5, cap=5.0)

    def __init__(self) -> None:
        self.failing: dict[str, float] = {}  # alias -> when its deletes started failing
        self.attempts = 0
        self.retry_at = 0.0

    def failed(self, alias: str, count: int, exc: DatabaseError) -> None:
        now = time.monotonic()
        if alias not in self.failing:
            if not self.failing:
                self.attempts = 0
            self.failing[alias] = now
            logger.warning(
                "could not delete %d confirmed CQRS message(s) on %r (%s); kept, and deleted "
                "when the database is back",
                count,
                alias,
                type(exc).__name__,
            )
        self.attempts += 1
        self.retry_at = now + self.RETRY.delay(self.attempts)
        connection = connections[alias]
        if database_outage(exc) and not connection.in_atomic_block:
            connection.close()  # broken: the next use opens a new one

    def recovered(self, alias: str, count: int) -> None:
        since = self.failing.pop(alias, None)
        if since is not None:
            logger.info(
                "deleted %d confirmed CQRS message(s) on %r; the database was away for %.1fs",
                count,
                alias,
                time.monotonic() - since,
            )
            if not self.failing:
                self.retry_at = 0.0


_delete_outage = _DeleteOutage()


def failed(payloads: list[TransportPayload], exc: BaseException) -> None:
    """Stored messages that were refused, never confirmed or not sent: the relay sends them."""
    from django_messaging.cqrs.models import PendingMessage

    for payload in payloads:
        metrics.failed("cqrs", payload.cqrs_id)
        using = payload.origin_db or "default"
        logger.warning(
            "cqrs_id=%s pk=%s %s: not published (%s: %s); stored to send later",
            payload.cqrs_id,
            payload.pk,
            payload.signal_type.value,
            type(exc).__name__,
            exc,
        )
        try:
            # The body too: a row stored by a save's own statement has none yet.
            PendingMessage.objects.using(using).filter(pk=payload.outbox_id).update(
                attempts=1,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                body=payload.body().decode(),
            )
        except DatabaseError:
            # The row is stored anyway: the relay sends it after CQRS_OUTBOX_GRACE.
            logger.exception("cqrs_id=%s pk=%s: could not mark", payload.cqrs_id, payload.pk)
        _maybe_pending[using] = True


def store(payload: TransportPayload, using: str, exc: BaseException) -> None:
    from django_messaging.cqrs.models import PendingMessage

    if payload.outbox_id is not None:
        failed([payload], exc)
        return
    body = payload.body().decode()
    logger.warning(
        "cqrs_id=%s pk=%s %s: not published (%s: %s); stored to send later",
        payload.cqrs_id,
        payload.pk,
        payload.signal_type.value,
        type(exc).__name__,
        exc,
    )
    try:
        PendingMessage.objects.using(using).create(
            cqrs_id=payload.cqrs_id,
            signal_type=payload.signal_type.value,
            instance_pk=str(payload.pk),
            queue=payload.queue or "",
            body=body,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            trace_context=stored_trace(payload),
        )
    except DatabaseError:
        logger.exception(
            "cqrs_id=%s pk=%s: could not store the unpublished message either: %s",
            payload.cqrs_id,
            payload.pk,
            body,
        )
        raise
    _maybe_pending[using] = True


def store_unbuilt(instance: Any, using: str, exc: BaseException) -> None:
    """Keep a saved change whose message could not be built (a failing ``CQRS_SERIALIZER``):
    a row without a body, built again from the instance by :func:`flush_pending`."""
    from django_messaging.cqrs.models import PendingMessage

    logger.error(
        "cqrs_id=%s pk=%s: serialization failed (%s: %s); the change is stored to send later",
        instance.CQRS_ID,
        instance.pk,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )
    PendingMessage.objects.using(using).create(
        cqrs_id=instance.CQRS_ID,
        signal_type="SAVE",
        instance_pk=str(instance.pk),
        body="",
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
    )
    _maybe_pending[using] = True


def flush_pending(
    using: str = "default", limit: int | None = None, *, due_only: bool = False
) -> int:
    """Publish stored messages oldest first through the core relay, each batch's confirms
    awaited; stop at the first failure. ``limit``: one batch of at most that many.
    ``due_only``: leave the rows that wait for a retry (after a publish). Returns how many
    went."""
    from django_messaging.cqrs.relay import PendingRelay

    if not _flush_lock.acquire(blocking=False):
        return 0
    sent = 0
    relay = PendingRelay(using, due_only=due_only)
    try:
        relay.start()
        if limit:
            relay.batch_size = limit
        sent = relay.flush(max_batches=1 if limit else None)
        if relay.pending.drained:
            # Rows that wait for a retry are the relay's (cqrs_pending run, or the next flush):
            # trying them after every publish would cost each save a query.
            _maybe_pending[using] = False
        if using in _flush_failing:
            _flush_failing.discard(using)
            logger.info("reading pending CQRS messages on %r again", using)
    except DatabaseError as exc:
        if not database_outage(exc):
            logger.exception("could not read pending CQRS messages on %r", using)
        elif using not in _flush_failing:
            # The database is away: what was claimed stays stored and is sent later.
            _flush_failing.add(using)
            logger.warning(
                "could not read pending CQRS messages on %r (%s); they are sent when the "
                "database is back",
                using,
                type(exc).__name__,
            )
    finally:
        relay.stop()
        if sent:
            logger.info("published %d stored CQRS message(s) from %r", sent, using)
        _flush_lock.release()
    return sent


def pending_count(using: str = "default") -> int:
    from django_messaging.cqrs.models import PendingMessage

    try:
        return PendingMessage.objects.using(using).count()
    except DatabaseError:
        return 0
