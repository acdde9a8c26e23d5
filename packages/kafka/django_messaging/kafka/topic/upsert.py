"""``update_or_create`` in one statement, where nothing can tell the difference.

Django's ``update_or_create(**lookup, defaults=...)`` is a savepoint, a ``SELECT ... FOR
UPDATE``, then an ``UPDATE`` (or an ``INSERT``) through ``Model.save()``: three or four round
trips per message of a model consumer. On PostgreSQL the same outcome is one
``INSERT ... ON CONFLICT (lookup) DO UPDATE SET <defaults> RETURNING ...`` whenever
``save()`` would run nothing but Django's own code:

- the model's ``save()``, ``save_base()`` and the methods under them are Django's, it has no
  parent model (multi-table inheritance) and no ``pre_save``/``post_save`` receiver;
- its default manager is a plain ``Manager`` over ``QuerySet`` (no ``get_queryset()``
  filter, no ``update_or_create()`` of its own);
- the lookup names exactly the fields of a unique constraint (the primary key, a
  ``unique=True`` field, a ``UniqueConstraint``/``unique_together`` without condition), with
  plain values that are not ``None``;
- the defaults name concrete fields of the model's table with plain values (no expression, no
  callable), a field at most once, and no ``auto_now_add`` field (``save()`` writes "now"
  into it on insert only);
- every field is saved as Django saves it by default (``pre_save()`` of ``Field``, or the
  ``auto_now``/``auto_now_add`` of date and time fields; no ``db_default``, no generated
  field, no ``get_placeholder()``).

Otherwise, and on other databases, it is Django's ``update_or_create``. The returned
``(obj, created)`` is the one Django returns: a created object is the instance built from
lookup and defaults with its primary key set; an updated one is the stored row (read back
with ``RETURNING``, through the fields' converters) with the defaults assigned.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router
from django.db.models import Field, Manager, QuerySet, signals
from django.db.models.fields import DateField, DateTimeField, TimeField
from django.db.models.manager import BaseManager

__all__ = ["update_or_create"]

#: ``pre_save()`` implementations whose effect an upsert reproduces
_PLAIN_PRE_SAVE = {Field.pre_save, DateField.pre_save, DateTimeField.pre_save, TimeField.pre_save}

_MODEL_METHODS = ("save", "save_base", "_save_parents", "_save_table", "_do_insert", "_do_update")

#: (model, lookup keys, defaults keys) -> the statement's plan, or None: not for an upsert
_plans: dict[tuple[Any, ...], _Plan | None] = {}
#: model -> can its rows be upserted at all
_models: dict[type[models.Model], bool] = {}


class _Plan:
    """The statement of one (model, lookup keys, defaults keys) shape."""

    def __init__(
        self,
        model: type[models.Model],
        insert_fields: list[Field],
        insert_fields_no_pk: list[Field],
        unique: list[Field],
        update: list[Field],
        ops: Any,
    ) -> None:
        meta = model._meta
        self.model = model
        self.fields = insert_fields
        self.fields_no_pk = insert_fields_no_pk
        self.concrete = list(meta.concrete_fields)
        self.attnames = [f.attname for f in self.concrete]
        self.returning = [f for f in meta.db_returning_fields]
        table = ops.quote_name(meta.db_table)
        returning = ", ".join(f"{table}.{ops.quote_name(f.column)}" for f in self.concrete)
        suffix = (
            f"ON CONFLICT({', '.join(ops.quote_name(f.column) for f in unique)}) DO UPDATE SET "
            + ", ".join(
                f"{ops.quote_name(f.column)} = EXCLUDED.{ops.quote_name(f.column)}" for f in update
            )
            + f" RETURNING {returning}, ({table}.xmax = 0)"
        )

        def insert(fields: list[Field]) -> str:
            columns = ", ".join(ops.quote_name(f.column) for f in fields)
            values = ", ".join(["%s"] * len(fields))
            return f"INSERT INTO {table} ({columns}) VALUES ({values}) {suffix}"

        self.sql = insert(insert_fields)
        self.sql_no_pk = insert(insert_fields_no_pk)
        #: index in ``concrete`` -> (converters, expression), once known
        self.converters: dict[int, tuple[list[Any], Any]] | None = None

    def converters_for(self, connection: Any) -> dict[int, tuple[list[Any], Any]]:
        """The converters of the returned columns, as Django applies them to loaded rows."""
        found = self.converters
        if found is None:
            found = {}
            table = self.model._meta.db_table
            for index, field in enumerate(self.concrete):
                expression = field.get_col(table)
                converters = connection.ops.get_db_converters(expression) + list(
                    expression.get_db_converters(connection)
                )
                if converters:
                    found[index] = (converters, expression)
            self.converters = found
        return found


def update_or_create(
    model: type[models.Model], lookup: dict[str, Any], defaults: dict[str, Any]
) -> tuple[models.Model, bool]:
    """``model._default_manager.update_or_create(**lookup, defaults=defaults)``, in one
    statement where that is the same (see the module)."""
    manager = model._default_manager
    if _plain_model(model) and _no_receivers(model):
        using = router.db_for_write(model)
        connection = connections[using]
        if connection.vendor == "postgresql" and _plain_values(lookup, defaults):
            plan = _plan(model, lookup, defaults, connection)
            if plan is not None:
                return _upsert(plan, lookup, defaults, connection, using)
    return manager.update_or_create(**lookup, defaults=defaults)  # type: ignore[no-any-return]


def _no_receivers(model: type[models.Model]) -> bool:
    return not (signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model))


def _plain_values(lookup: dict[str, Any], defaults: dict[str, Any]) -> bool:
    for value in lookup.values():
        if value is None or hasattr(value, "resolve_expression") or callable(value):
            return False
    for value in defaults.values():
        if hasattr(value, "resolve_expression") or callable(value):
            return False
    return True


def _plain_model(model: type[models.Model]) -> bool:
    known = _models.get(model)
    if known is None:
        known = _models[model] = _check_model(model)
    return known


def _check_model(model: type[models.Model]) -> bool:
    meta = model._meta
    if meta.parents or getattr(meta, "is_composite_pk", False):
        return False
    for name in _MODEL_METHODS:
        if getattr(model, name) is not getattr(models.Model, name):
            return False
    manager = model._default_manager
    if not (
        type(manager).update_or_create is Manager.update_or_create  # type: ignore[attr-defined]
        and type(manager).get_queryset is BaseManager.get_queryset
        and manager._queryset_class is QuerySet  # type: ignore[attr-defined]
    ):
        return False
    for field in meta.local_concrete_fields:
        if (
            type(field).pre_save not in _PLAIN_PRE_SAVE
            or hasattr(field, "get_placeholder")
            or getattr(field, "generated", False)
            or getattr(field, "db_default", models.NOT_PROVIDED)
            is not models.NOT_PROVIDED  # Django 5.0+
        ):
            return False
    return True


def _plan(
    model: type[models.Model], lookup: dict[str, Any], defaults: dict[str, Any], connection: Any
) -> _Plan | None:
    key = (model, tuple(lookup), tuple(defaults), connection.vendor)
    try:
        return _plans[key]
    except KeyError:
        pass
    plan = _plans[key] = _make_plan(model, lookup, defaults, connection)
    return plan


def _field(model: type[models.Model], name: str) -> Field | None:
    meta = model._meta
    if name == "pk":
        return meta.pk  # type: ignore[return-value]
    field = meta._forward_fields_map.get(name)  # type: ignore[attr-defined]
    if field is None or not getattr(field, "concrete", False) or field.model is not model:
        return None
    if field not in meta.local_concrete_fields:
        return None
    return field  # type: ignore[no-any-return]


def _make_plan(
    model: type[models.Model], lookup: dict[str, Any], defaults: dict[str, Any], connection: Any
) -> _Plan | None:
    meta = model._meta
    unique: list[Field] = []
    for name in lookup:
        field = _field(model, name)
        if field is None or field in unique:
            return None
        unique.append(field)
    columns = {f.column for f in unique}
    if not any(columns == set(group) for group in _unique_column_sets(model)):
        return None
    update: list[Field] = []
    for name in defaults:
        field = _field(model, name)
        if field is None or field in update:
            return None
        if getattr(field, "auto_now_add", False):
            return None
        if field not in unique:
            update.append(field)
    for field in meta.local_concrete_fields:
        # what save() writes on an update beside the defaults: auto_now fields
        if getattr(field, "auto_now", False) and field not in update and field not in unique:
            update.append(field)
    if not update:
        return None
    fields = list(meta.local_concrete_fields)
    no_pk = [f for f in fields if f is not meta.auto_field]
    return _Plan(model, fields, no_pk, unique, update, connection.ops)


def _unique_column_sets(model: type[models.Model]) -> list[tuple[Any, ...]]:
    meta = model._meta
    found: list[tuple[Any, ...]] = []
    for field in meta.local_concrete_fields:
        if field.unique:
            found.append((field.column,))
    for names in meta.unique_together:
        found.append(tuple(_column(model, n) for n in names))
    for constraint in meta.total_unique_constraints:
        found.append(tuple(_column(model, n) for n in constraint.fields))
    return found


def _column(model: type[models.Model], name: str) -> Any:
    return getattr(model._meta.get_field(name), "column", None)


def _upsert(
    plan: _Plan, lookup: dict[str, Any], defaults: dict[str, Any], connection: Any, using: str
) -> tuple[models.Model, bool]:
    model = plan.model
    params = {k: v for k, v in lookup.items()}
    params.update(defaults)
    obj = model(**params)
    obj._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    if obj.pk is None and model._meta.auto_field is not None:
        fields, sql = plan.fields_no_pk, plan.sql_no_pk
    else:
        fields, sql = plan.fields, plan.sql
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection=connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    created = bool(row[-1])
    converters = plan.converters_for(connection)
    if created:
        for field in plan.returning:
            index = plan.concrete.index(field)
            setattr(obj, field.attname, _convert(row[index], converters.get(index), connection))
        obj._state.adding = False
        obj._state.db = using
        return obj, True
    stored = list(row[:-1])
    for index, found in converters.items():
        stored[index] = _convert(stored[index], found, connection)
    loaded = model.from_db(using, plan.attnames, stored)
    for name, value in defaults.items():
        setattr(loaded, name, value)
    return loaded, False


def _convert(value: Any, found: tuple[list[Any], Any] | None, connection: Any) -> Any:
    if found is not None:
        converters, expression = found
        for converter in converters:
            value = converter(value, expression, connection)
    return value
