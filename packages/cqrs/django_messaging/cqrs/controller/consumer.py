"""Applying messages to replica models, one at a time or a whole batch per transaction.

:func:`consume_batch` is what the transports call. Messages for ordinary replica models (no
custom ``cqrs_create``/``cqrs_update``, no save signals) are applied with one SELECT of the
current revisions (rows locked where the database can), one bulk INSERT, one bulk UPDATE and one
DELETE per batch, deciding every row in memory with the same rules as ``cqrs_save``: newest
revision wins, duplicates and stale revisions are dropped, a delete leaves a tombstone. Anything
else, or a batch that fails, is applied message by message, each in its own transaction, so one
bad message never holds back the others.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import signals
from django.utils import timezone

from django_messaging.cqrs.conf import replica_setting, settings
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PayloadError
from django_messaging.cqrs.managers import ReplicaManager, lock_instances, parse_updated
from django_messaging.cqrs.registries import ReplicaRegistry

logger = logging.getLogger(__name__)


class NotApplied(Exception):
    """A replica hook returned None: the message counts as failed and is retried."""


def route_signal_to_replica_model(
    signal_type: SignalType | str,
    cqrs_id: str,
    instance_data: dict[str, Any],
    previous_data: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    queue: str | None = None,
) -> Any:
    """Hand one message to its replica model's ``cqrs_save``/``cqrs_delete``."""
    signal_type = SignalType(signal_type)
    model = ReplicaRegistry.models.get(cqrs_id)
    if model is None:
        raise PayloadError(f"no replica model with CQRS_ID {cqrs_id!r} in this service")
    if (
        signal_type is SignalType.SYNC
        and model.CQRS_ONLY_DIRECT_SYNCS
        and (queue is None or queue != settings.QUEUE)
    ):
        logger.info("cqrs_id=%s: broadcast SYNC ignored (CQRS_ONLY_DIRECT_SYNCS)", cqrs_id)
        return True
    kwargs = {"meta": meta} if model.CQRS_META else {}
    if signal_type is SignalType.DELETE:
        return model.cqrs_delete(instance_data, **kwargs)
    return model.cqrs_save(
        instance_data,
        previous_data=previous_data,
        sync=signal_type is SignalType.SYNC,
        **kwargs,
    )


def _apply_timeout(db: str) -> None:
    timeout = replica_setting("QUERY_TIMEOUT")
    if timeout and connections[db].vendor == "postgresql":
        with connections[db].cursor() as cursor:
            # set_config, not SET: a SET statement takes no bound parameter (server-side binding)
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(int(timeout))])


def consume(payload: TransportPayload) -> Any:
    """Apply one message in its own transaction; raise when it failed."""
    model = ReplicaRegistry.models.get(payload.cqrs_id)
    args = (
        payload.signal_type,
        payload.cqrs_id,
        payload.instance_data,
        payload.previous_data,
        payload.meta,
        payload.queue,
    )
    if model is None or getattr(model, "CQRS_NO_DB_OPERATIONS", False):
        result = route_signal_to_replica_model(*args)
    else:
        db = router.db_for_write(model)
        for attempt in range(3):
            try:
                with transaction.atomic(using=db):
                    _apply_timeout(db)
                    result = route_signal_to_replica_model(*args)
                    if result is None:
                        raise NotApplied(f"cqrs_id={payload.cqrs_id} pk={payload.pk} not applied")
                break
            except IntegrityError:
                # Another worker created the row between our SELECT and INSERT: look again.
                if attempt == 2:
                    raise
    if result is None:
        raise NotApplied(f"cqrs_id={payload.cqrs_id} pk={payload.pk} not applied")
    return result


def _function(method: Any) -> Any:
    return getattr(method, "__func__", method)


def _fast_path(model: Any) -> bool:
    cached = model.__dict__.get("_cqrs_fast_path")
    if cached is not None:
        return cached
    applies_in_bulk = getattr(model, "_cqrs_applies_in_bulk", None)
    ok = bool(
        applies_in_bulk is not None
        and applies_in_bulk()
        and type(model.__dict__.get("cqrs", model.cqrs)) is ReplicaManager
    )
    model._cqrs_fast_path = ok
    return ok


#: The module whose signal receivers publish a master's changes: a model that is a master too
#: can still be applied in bulk (its messages are not this worker's concern).
_OWN_RECEIVERS = "django_messaging.cqrs.signals"


def _listened(model: Any) -> bool:
    """Does anything besides this package listen to the model's save or delete signals?"""
    for signal in (signals.pre_save, signals.post_save, signals.pre_delete, signals.post_delete):
        if not signal.has_listeners(model):
            continue
        live: Any = signal._live_receivers(model)
        if isinstance(live, tuple):  # Django >= 5.0: (sync, async)
            live = [*live[0], *live[1]]
        if any(getattr(_function(r), "__module__", None) != _OWN_RECEIVERS for r in live):
            return True
    return False


@dataclass
class _Row:
    exists_db: bool
    exists: bool
    revision: Any = None
    updated: Any = None
    data: Any = None
    dirty: bool = False
    tomb: tuple[Any, Any] | None = None
    tomb_db: bool = False
    tomb_changed: bool = False


def _apply_group(model: Any, items: list[tuple[int, TransportPayload]], results: list) -> None:
    """Apply ``items`` (all for ``model``) in the current transaction, in bulk."""
    from django_messaging.cqrs.models import Tombstone

    manager = model.cqrs
    pk_field = model._meta.pk
    db = router.db_for_write(model)
    entries = []
    for index, payload in items:
        try:
            if payload.signal_type is SignalType.DELETE:
                data = payload.instance_data
                if "id" not in data:
                    raise PayloadError(f"cqrs_id={model.CQRS_ID}: DELETE lacks 'id'")
                try:
                    pk = pk_field.to_python(data["id"])
                except Exception as exc:
                    raise PayloadError(
                        f"cqrs_id={model.CQRS_ID}: the 'id' is not a valid pk"
                    ) from exc
                deleted_at = parse_updated(data.get("cqrs_updated")) or timezone.now()
                entries.append((index, "D", pk, data.get("cqrs_revision"), deleted_at, None, False))
            else:
                mapped = manager._map_save_data(payload.instance_data)
                pk = mapped[pk_field.attname]
                updated = parse_updated(mapped["cqrs_updated"])
                mapped[model._meta.get_field("cqrs_updated").attname] = updated
                sync = payload.signal_type is SignalType.SYNC
                entries.append((index, "S", pk, mapped["cqrs_revision"], updated, mapped, sync))
        except PayloadError as exc:
            results[index] = exc
    if not entries:
        return
    pks = {e[2] for e in entries}
    lock_instances(model, db, pks)
    qs = model._default_manager.using(db).filter(pk__in=pks)
    if connections[db].features.has_select_for_update:
        qs = qs.select_for_update()
    rows: dict[Any, _Row] = {
        pk: _Row(exists_db=True, exists=True, revision=rev, updated=upd)
        for pk, rev, upd in qs.values_list("pk", "cqrs_revision", "cqrs_updated")
    }
    for tomb in Tombstone.objects.using(db).filter(
        cqrs_id=model.CQRS_ID, instance_pk__in=[str(pk) for pk in pks]
    ):
        key = pk_field.to_python(tomb.instance_pk)
        row = rows.setdefault(key, _Row(exists_db=False, exists=False))
        row.tomb = (tomb.revision, tomb.deleted_at)
        row.tomb_db = True
    for index, kind, pk, revision, updated, mapped, sync in entries:
        row = rows.setdefault(pk, _Row(exists_db=False, exists=False))
        results[index] = None
        if kind == "S":
            if row.tomb is not None:
                if updated is not None and updated <= row.tomb[1]:
                    logger.warning(
                        "cqrs_id=%s pk=%s revision=%s: dropped, the row was deleted",
                        model.CQRS_ID,
                        pk,
                        revision,
                    )
                    continue
                row.tomb, row.tomb_changed = None, True
            if row.exists and not sync and row.revision is not None and row.revision >= revision:
                logger.info(
                    "cqrs_id=%s pk=%s: revision %s dropped (have %s)",
                    model.CQRS_ID,
                    pk,
                    revision,
                    row.revision,
                )
                continue
            if row.exists and row.revision is not None and revision > row.revision + 1 and not sync:
                logger.warning(
                    "cqrs_id=%s pk=%s: %d revision(s) skipped",
                    model.CQRS_ID,
                    pk,
                    revision - row.revision - 1,
                )
            row.exists, row.revision, row.updated, row.data, row.dirty = (
                True,
                revision,
                updated,
                mapped,
                True,
            )
        else:
            if row.exists and row.updated is not None and row.updated > updated:
                logger.warning(
                    "cqrs_id=%s pk=%s: delete older than the row; kept", model.CQRS_ID, pk
                )
                continue
            row.exists, row.data, row.dirty = False, None, True
            row.tomb, row.tomb_changed = (revision, updated), True
    creates, updates, deletes = [], defaultdict(list), []
    tomb_upserts, tomb_deletes = [], []
    for pk, row in rows.items():
        if row.dirty:
            if row.exists and not row.exists_db:
                creates.append(model(**row.data))
            elif row.exists and row.data is not None:
                fields = tuple(sorted(k for k in row.data if k != pk_field.attname))
                updates[fields].append(model(**row.data))
            elif not row.exists and row.exists_db:
                deletes.append(pk)
        if row.tomb_changed:
            if row.tomb is not None:
                tomb_upserts.append(
                    Tombstone(
                        cqrs_id=model.CQRS_ID,
                        instance_pk=str(pk),
                        revision=row.tomb[0],
                        deleted_at=row.tomb[1],
                        created=timezone.now(),
                    )
                )
            elif row.tomb_db:
                tomb_deletes.append(str(pk))
    manager_db = model._default_manager.using(db)
    if deletes:
        manager_db.filter(pk__in=deletes)._raw_delete(db)
    if creates:
        manager_db.bulk_create(creates)
    for fields, objs in updates.items():
        manager_db.bulk_update(objs, [model._meta.get_field(_name(model, f)).name for f in fields])
    if tomb_deletes:
        Tombstone.objects.using(db).filter(
            cqrs_id=model.CQRS_ID, instance_pk__in=tomb_deletes
        ).delete()
    if tomb_upserts:
        Tombstone.objects.using(db).bulk_create(
            tomb_upserts,
            update_conflicts=True,
            unique_fields=["cqrs_id", "instance_pk"],
            update_fields=["revision", "deleted_at", "created"],
        )


def _name(model: Any, attname: str) -> str:
    for field in model._meta.concrete_fields:
        if field.attname == attname:
            return field.name
    return attname


def consume_batch(payloads: list[TransportPayload]) -> list[BaseException | None]:
    """Apply messages in order; return, per message, None (done) or the error it met."""
    results: list[BaseException | None] = [None] * len(payloads)
    fast: dict[Any, list[tuple[int, TransportPayload]]] = defaultdict(list)
    slow: list[int] = []
    for index, payload in enumerate(payloads):
        model = ReplicaRegistry.models.get(payload.cqrs_id)
        if (
            model is not None
            and _fast_path(model)
            and not _listened(model)
            and not (payload.signal_type is SignalType.SYNC and model.CQRS_ONLY_DIRECT_SYNCS)
        ):
            fast[model].append((index, payload))
        else:
            slow.append(index)
    for model, items in fast.items():
        db = router.db_for_write(model)
        try:
            with transaction.atomic(using=db):
                _apply_timeout(db)
                _apply_group(model, items, results)
        except Exception as exc:  # DatabaseError mostly; anything else is isolated below too
            logger.info(
                "cqrs_id=%s: batch of %d failed (%s); applying one by one",
                model.CQRS_ID,
                len(items),
                exc,
            )
            slow.extend(index for index, _ in items)
    for index in sorted(slow):
        try:
            consume(payloads[index])
            results[index] = None
        except Exception as exc:
            results[index] = exc
            _log_timeout(payloads[index], exc)
    return results


def _log_timeout(payload: TransportPayload, exc: BaseException) -> None:
    """``CQRS_LOG_TIMED_OUT_QUERIES``: report messages stopped by ``CQRS_QUERY_TIMEOUT``."""
    if not replica_setting("LOG_TIMED_OUT_QUERIES"):
        return
    text = str(exc).lower()
    if "statement timeout" in text or "canceling statement" in text:
        logging.getLogger(replica_setting("QUERY_LOGGER")).error(
            "cqrs_id=%s pk=%s: query timed out after %s ms: %s",
            payload.cqrs_id,
            payload.pk,
            replica_setting("QUERY_TIMEOUT"),
            exc,
        )
