"""``Model.cqrs``: bulk operations that publish on the master, revision-aware writes on replicas."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.db import connections, models, router, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_messaging.core.datetimes import as_stored
from django_messaging.cqrs.exceptions import PayloadError
from django_messaging.cqrs.serialization import from_wire

logger = logging.getLogger(__name__)

#: Returned by ``save_instance`` for a message that was dropped on purpose (stale, duplicate).
DROPPED = True


class MasterManager(models.Manager):
    def bulk_create(self, objs: Any, **kwargs: Any) -> list[Any]:  # type: ignore[override]
        """``bulk_create`` that publishes one message per instance on commit.

        The database must return the primary keys (PostgreSQL, SQLite ≥ 3.35, MariaDB ≥ 10.5)
        or the instances must carry them already.
        """
        objs = list(objs)
        for obj in objs:
            obj.save_tracked_fields()
        created = super().bulk_create(objs, **kwargs)
        using = self.db
        self.model.call_post_bulk_create(created, using=using)
        return created

    def bulk_update(self, queryset: models.QuerySet, **kwargs: Any) -> int | None:  # type: ignore[override]
        """``queryset.update(**kwargs)`` that bumps revisions and publishes every updated row.

        Not Django's ``bulk_update(objs, fields)``: this takes a queryset and new values.
        """
        model = self.model
        using = queryset.db
        pks = list(queryset.values_list("pk", flat=True))
        tracker = getattr(model, "_cqrs_tracker", None)
        with transaction.atomic(using=using, savepoint=False):
            before = {}
            if tracker is not None:
                before = {o.pk: o for o in model._default_manager.using(using).filter(pk__in=pks)}
            count = (
                model._default_manager.using(using)
                .filter(pk__in=pks)
                .update(
                    cqrs_revision=models.F("cqrs_revision") + 1,
                    cqrs_updated=timezone.now(),
                    **kwargs,
                )
            )
            objs = list(model._default_manager.using(using).filter(pk__in=pks).order_by("pk"))
            if tracker is not None:
                for obj in objs:
                    old = before.get(obj.pk)
                    obj._cqrs_tracked_data = None if old is None else tracker.loaded(old)
            model.call_post_update(objs, using=using)
        return count


def _locking(qs: models.QuerySet) -> models.QuerySet:
    if connections[qs.db].features.has_select_for_update:
        return qs.select_for_update()
    return qs


def lock_instances(model: Any, db: str, pks: Any) -> None:
    """Serialise, until the transaction ends, the workers that apply messages for the same
    instances of ``model``. Row locks cannot do it for a row that does not exist yet: a DELETE
    and an older SAVE of such a row, applied side by side, would leave the row and its
    tombstone both. PostgreSQL only (advisory locks, taken in key order: no deadlock); SQLite
    has one writer at a time anyway."""
    connection = connections[db]
    if connection.vendor != "postgresql":
        return
    to_python = model._meta.pk.to_python
    keys = sorted(
        {
            int.from_bytes(
                hashlib.blake2b(
                    f"{model.CQRS_ID}:{to_python(pk)}".encode(), digest_size=8
                ).digest(),
                "big",
                signed=True,
            )
            for pk in pks
        }
    )
    if keys:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [keys])


def parse_updated(value: Any) -> Any:
    """A master's ``cqrs_updated`` as this project stores datetimes (see
    :func:`~django_messaging.core.datetimes.as_stored`)."""
    if value is None or not isinstance(value, str):
        return value
    parsed = parse_datetime(value)
    return None if parsed is None else as_stored(parsed)


class ReplicaManager(models.Manager):
    # -- mapping ---------------------------------------------------------------------------
    def _fields(self) -> dict[str, Any]:
        cached = self.model.__dict__.get("_cqrs_replica_fields")
        if cached is None:
            cached = {f.name: f for f in self.model._meta.concrete_fields}
            self.model._cqrs_replica_fields = cached
        return cached

    def _map_save_data(self, master_data: dict[str, Any]) -> dict[str, Any]:
        model = self.model
        for key in ("cqrs_revision", "cqrs_updated"):
            if key not in master_data:
                raise PayloadError(f"cqrs_id={model.CQRS_ID}: instance_data lacks {key!r}")
        mapping = model.CQRS_MAPPING
        if mapping:
            missing = [m for m in mapping if m not in master_data]
            if missing:
                raise PayloadError(
                    f"cqrs_id={model.CQRS_ID}: instance_data lacks mapped key(s) {missing}"
                )
            data = {replica: master_data[master] for master, replica in mapping.items()}
            data["cqrs_revision"] = master_data["cqrs_revision"]
            data["cqrs_updated"] = master_data["cqrs_updated"]
        else:
            data = dict(master_data)
        if model.CQRS_CUSTOM_SERIALIZATION:
            return data
        fields = self._fields()
        pk_name = model._meta.pk.name
        if pk_name not in data:
            raise PayloadError(f"cqrs_id={model.CQRS_ID}: instance_data lacks the pk {pk_name!r}")
        mapped = {}
        try:
            for name, value in data.items():
                field = fields.get(name)
                if field is None:
                    continue
                mapped[field.attname] = from_wire(field, value)
        except Exception as exc:  # ValidationError, binascii.Error, ...
            raise PayloadError(
                f"cqrs_id={model.CQRS_ID}: field {name!r} cannot take the value sent "
                f"({type(exc).__name__})"
            ) from exc
        missing = [
            f.name
            for f in fields.values()
            if f.attname not in mapped
            and not f.null
            and not f.has_default()
            and not getattr(f, "auto_now", False)
            and not getattr(f, "auto_now_add", False)
            and not f.primary_key
        ]
        if missing:
            raise PayloadError(
                f"cqrs_id={model.CQRS_ID}: instance_data lacks required field(s) {missing}"
            )
        return mapped

    def _map_previous_data(self, previous_data: dict[str, Any] | None) -> dict[str, Any] | None:
        mapping = self.model.CQRS_MAPPING
        if not previous_data or not mapping:
            return previous_data
        return {mapping[k]: v for k, v in previous_data.items() if k in mapping}

    def _hook_kwargs(self, meta: Any) -> dict[str, Any]:
        return {"meta": meta} if self.model.CQRS_META else {}

    # -- tombstones --------------------------------------------------------------------------
    def _tombstone(self, db: str, pk: Any) -> Any:
        from django_messaging.cqrs.models import Tombstone

        return (
            Tombstone.objects.using(db)
            .filter(cqrs_id=self.model.CQRS_ID, instance_pk=str(pk))
            .first()
        )

    # -- the documented API ------------------------------------------------------------------
    def save_instance(
        self,
        master_data: dict[str, Any],
        previous_data: dict[str, Any] | None = None,
        sync: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        """Create or update from master data; stale, duplicate and deleted-row saves are dropped."""
        model = self.model
        mapped = self._map_save_data(master_data)
        previous = self._map_previous_data(previous_data)
        pk_attname = model._meta.pk.attname
        pk = mapped.get(pk_attname, mapped.get(model._meta.pk.name))
        revision = mapped["cqrs_revision"]
        updated = parse_updated(mapped["cqrs_updated"])
        db = router.db_for_write(model)
        lock_instances(model, db, [pk])
        instance = _locking(model._default_manager.db_manager(db).filter(pk=pk)).first()
        tomb = self._tombstone(db, pk)
        if tomb is not None:
            if updated is not None and updated <= tomb.deleted_at:
                logger.warning(
                    "cqrs_id=%s pk=%s revision=%s: dropped, the row was deleted at %s",
                    model.CQRS_ID,
                    pk,
                    revision,
                    tomb.deleted_at,
                )
                return instance or DROPPED
            tomb.delete()
        if instance is None:
            return model.cqrs_create(sync, mapped, previous, **self._hook_kwargs(meta))
        current = instance.cqrs_revision
        if not sync:
            if current > revision:
                logger.info(
                    "cqrs_id=%s pk=%s: stale revision %s dropped (have %s)",
                    model.CQRS_ID,
                    pk,
                    revision,
                    current,
                )
                return instance
            if current == revision:
                logger.info(
                    "cqrs_id=%s pk=%s: duplicate revision %s dropped", model.CQRS_ID, pk, revision
                )
                return instance
            if revision > current + 1:
                logger.warning(
                    "cqrs_id=%s pk=%s: %d revision(s) skipped (%s -> %s)",
                    model.CQRS_ID,
                    pk,
                    revision - current - 1,
                    current,
                    revision,
                )
        elif current > revision:
            logger.warning(
                "cqrs_id=%s pk=%s: sync downgrades revision %s -> %s",
                model.CQRS_ID,
                pk,
                current,
                revision,
            )
        return self.update_instance(instance, mapped, previous, sync, meta)

    def create_instance(
        self,
        mapped_data: dict[str, Any],
        previous_data: dict[str, Any] | None = None,
        sync: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        return self.model.cqrs_create(sync, mapped_data, previous_data, **self._hook_kwargs(meta))

    def update_instance(
        self,
        instance: Any,
        mapped_data: dict[str, Any],
        previous_data: dict[str, Any] | None = None,
        sync: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> Any:
        return instance.cqrs_update(sync, mapped_data, previous_data, **self._hook_kwargs(meta))

    def delete_instance(self, master_data: dict[str, Any]) -> bool:
        """Delete the row unless it is newer than the delete; remember the delete (tombstone)."""
        from django_messaging.cqrs.models import Tombstone

        model = self.model
        if "id" not in master_data:
            raise PayloadError(f"cqrs_id={model.CQRS_ID}: DELETE lacks 'id'")
        try:
            pk = model._meta.pk.to_python(master_data["id"])
        except Exception as exc:
            raise PayloadError(f"cqrs_id={model.CQRS_ID}: the 'id' is not a valid pk") from exc
        deleted_at = parse_updated(master_data.get("cqrs_updated")) or timezone.now()
        revision = master_data.get("cqrs_revision")
        db = router.db_for_write(model)
        lock_instances(model, db, [pk])
        row = _locking(model._default_manager.db_manager(db).filter(pk=pk)).first()
        if row is not None:
            if row.cqrs_updated is not None and row.cqrs_updated > deleted_at:
                logger.warning(
                    "cqrs_id=%s pk=%s: delete at %s is older than the row (%s); kept",
                    model.CQRS_ID,
                    pk,
                    deleted_at,
                    row.cqrs_updated,
                )
                return True
            row.delete()
        Tombstone.objects.using(db).update_or_create(
            cqrs_id=model.CQRS_ID,
            instance_pk=str(pk),
            defaults={"revision": revision, "deleted_at": deleted_at},
        )
        return True
