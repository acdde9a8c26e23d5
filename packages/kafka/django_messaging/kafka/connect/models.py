"""``kafka_skip``: tell a change-data-capture connector which row changes not to publish.

A connector that streams table changes (Debezium, JDBC source) cannot see Python's
``suppress()``. ``KafkaConnectSkipModel`` adds a ``kafka_skip`` column instead, and every write
through the model or its queryset sets it, so the connector can filter on it:

* ``save()``, ``update()``, ``bulk_create()``, ``bulk_update()``: ``kafka_skip`` becomes ``False``
  (publish) unless the code set it explicitly, or ``True`` while ``suppress()`` is active for
  everything (``with suppress():``). ``save(update_fields=[...])`` always writes it too, so a
  stale instance cannot leave an old ``True`` behind (django-kafka #298).
* ``delete()`` (of an instance or a queryset, cascades included): the rows' ``kafka_skip`` is
  written in the same transaction just before the delete, so the connector sees the delete of a
  row that was last written with ``kafka_skip=True`` (django-kafka #19) and can skip deletes
  made under ``suppress()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import models, router, transaction
from django.db.models.deletion import Collector
from django.db.models.query_utils import DeferredAttribute

from django_messaging.core.suppression import is_suppressed

FIELD = "kafka_skip"
_EXPLICIT = "_kafka_skip_explicit"
_BATCH = 500
_FORCED: ContextVar[bool | None] = ContextVar("kafka_skip_forced", default=None)


def default_skip() -> bool:
    """The ``kafka_skip`` a write gets when the code did not choose: the value of an enclosing
    :func:`skip_writes` block, else whether everything is suppressed."""
    forced = _FORCED.get()
    return is_suppressed() if forced is None else forced


@contextmanager
def skip_writes(value: bool = True) -> Iterator[None]:
    """Inside the block, writes and deletes of ``KafkaConnectSkipModel`` rows that do not set
    ``kafka_skip`` explicitly store ``value`` (model consumers use it for the rows they sync
    from Kafka, without suppressing anything else)."""
    token = _FORCED.set(value)
    try:
        yield
    finally:
        _FORCED.reset(token)


def _is_skip_model(model: type[models.Model]) -> bool:
    return issubclass(model, KafkaConnectSkipModel)


def _flag(queryset: models.QuerySet[Any], value: bool) -> None:
    """Write ``kafka_skip=value`` on the rows of ``queryset`` that do not already have it."""
    models.QuerySet.update(queryset.exclude(**{FIELD: value}), **{FIELD: value})


def _flag_collected(collector: Collector, value: bool) -> None:
    """Flag every row the collector is about to delete, in the models that have ``kafka_skip``."""
    for model, instances in collector.data.items():
        if not _is_skip_model(model):
            continue
        pks = [obj.pk for obj in instances]
        for start in range(0, len(pks), _BATCH):
            _flag(
                model._base_manager.using(collector.using).filter(
                    pk__in=pks[start : start + _BATCH]
                ),
                value,
            )
        for obj in instances:
            obj.__dict__[FIELD] = value
    for queryset in collector.fast_deletes:
        if _is_skip_model(queryset.model):
            _flag(queryset, value)


def _delete_collected(collector: Collector, using: str) -> tuple[int, dict[str, int]]:
    with transaction.atomic(using=using, savepoint=False):
        _flag_collected(collector, default_skip())
        return collector.delete()


class KafkaConnectSkipQueryset(models.QuerySet[Any]):
    """QuerySet whose writes keep ``kafka_skip`` meaningful (see the module docstring)."""

    def update(self, **kwargs: Any) -> int:
        kwargs.setdefault(FIELD, default_skip())
        return super().update(**kwargs)

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        self._not_support_combined_queries("delete")  # type: ignore[attr-defined]
        if self.query.is_sliced:
            raise TypeError("Cannot use 'limit' or 'offset' with delete().")
        if self.query.distinct_fields:
            raise TypeError("Cannot call delete() after .distinct(*fields).")
        if self._fields is not None:  # type: ignore[attr-defined]
            raise TypeError("Cannot call delete() after .values() or .values_list()")
        query = self._chain()  # type: ignore[attr-defined]
        query._for_write = True
        query.query.select_for_update = False
        query.query.select_related = False
        query.query.clear_ordering(force=True)
        collector = Collector(using=query.db, origin=self)
        collector.collect(query)
        result = _delete_collected(collector, query.db)
        self._result_cache = None
        return result

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        objs = list(objs)
        for obj in objs:
            _prepare_write(obj)
        update_fields = kwargs.get("update_fields")
        if kwargs.get("update_conflicts") and update_fields and FIELD not in update_fields:
            kwargs["update_fields"] = [*update_fields, FIELD]
        created = super().bulk_create(objs, *args, **kwargs)
        for obj in objs:
            obj.__dict__[_EXPLICIT] = False
        return created

    def bulk_update(
        self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        objs = list(objs)
        for obj in objs:
            _prepare_write(obj)
        fields = list(fields)
        if fields and FIELD not in fields:
            fields.append(FIELD)
        updated = super().bulk_update(objs, fields, batch_size=batch_size)
        for obj in objs:
            obj.__dict__[_EXPLICIT] = False
        return updated


def _flag_position(model: type[models.Model]) -> int:
    """Index of ``kafka_skip`` among the positional arguments of ``model(...)``."""
    position = model.__dict__.get("_kafka_skip_position")
    if position is None:
        attnames = [f.attname for f in model._meta.concrete_fields]
        position = attnames.index(FIELD)
        model._kafka_skip_position = position  # type: ignore[attr-defined]
    return int(position)


def _prepare_write(obj: KafkaConnectSkipModel) -> None:
    """Before a write: keep an explicitly set ``kafka_skip``, else take the default."""
    if not obj.__dict__.get(_EXPLICIT, False):
        obj.__dict__[FIELD] = default_skip()


class _SkipFlagAttribute(DeferredAttribute):
    """``obj.kafka_skip = value`` also records that the code chose the value explicitly."""

    def __set__(self, instance: Any, value: Any) -> None:
        data = instance.__dict__
        data[FIELD] = value
        data[_EXPLICIT] = True


class KafkaSkipField(models.BooleanField):  # type: ignore[type-arg]
    """A ``BooleanField`` that tracks assignments; migrations see a plain ``BooleanField``."""

    descriptor_class = _SkipFlagAttribute

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.BooleanField", args, kwargs


class KafkaConnectSkipModel(models.Model):
    """Abstract model with the ``kafka_skip`` flag that change-data-capture connectors filter on.

    ``kafka_skip`` is reset on every write unless it was assigned since the instance was loaded
    or last saved: ``obj.kafka_skip = True; obj.save()`` skips that one change, the next
    ``obj.save()`` publishes again.
    """

    kafka_skip = KafkaSkipField(
        default=False,
        editable=False,
        help_text="Written on every save: True tells the Kafka connector not to publish this change.",
    )

    objects = KafkaConnectSkipQueryset.as_manager()

    class Meta:
        abstract = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if args:
            explicit = len(args) > _flag_position(type(self)) or FIELD in kwargs
        else:
            explicit = FIELD in kwargs
        self.__dict__[_EXPLICIT] = explicit

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Any:
        instance = super().from_db(db, field_names, values, **kwargs)
        instance.__dict__[_EXPLICIT] = False
        return instance

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        fields = kwargs.get("fields")
        if fields is None and len(args) > 1:
            fields = args[1]
        explicit = self.__dict__.get(_EXPLICIT, False)
        super().refresh_from_db(*args, **kwargs)
        reloaded = fields is None or FIELD in fields
        self.__dict__[_EXPLICIT] = False if reloaded else explicit

    def save(self, *args: Any, **kwargs: Any) -> None:
        _prepare_write(self)
        update_fields = kwargs.get("update_fields")
        if update_fields is None and len(args) > 3:
            update_fields = args[3]
            args = (*args[:3], *args[4:])
            kwargs["update_fields"] = update_fields
        if update_fields is not None:
            update_fields = list(update_fields)
            if update_fields and FIELD not in update_fields:
                update_fields.append(FIELD)
            kwargs["update_fields"] = update_fields
        super().save(*args, **kwargs)
        self.__dict__[_EXPLICIT] = False

    save.alters_data = True  # type: ignore[attr-defined]

    def delete(
        self, using: str | None = None, keep_parents: bool = False
    ) -> tuple[int, dict[str, int]]:
        if self.pk is None:
            raise ValueError(
                f"{self._meta.object_name} object can't be deleted because its "
                f"{self._meta.pk.attname} attribute is set to None."  # type: ignore[union-attr]
            )
        using = using or router.db_for_write(self.__class__, instance=self)
        collector = Collector(using=using, origin=self)
        collector.collect([self], keep_parents=keep_parents)
        result = _delete_collected(collector, using)
        self.__dict__[FIELD] = default_skip()
        return result

    delete.alters_data = True  # type: ignore[attr-defined]


__all__ = ["KafkaConnectSkipModel", "KafkaConnectSkipQueryset", "skip_writes"]
