"""``AvroSchema``: Avro record schemas built from Django models and from ``TypedDict`` classes.

    from django_messaging.kafka.schema.avro import AvroSchema

    AvroSchema.from_model(Order).to_json()                          # every column
    AvroSchema.from_model(Order, fields=["id", "total"])            # only these
    AvroSchema.from_model(Order, fields=["secret"], exclude=True)   # all but these
    AvroSchema.key_from_model(Order, ["pk"])                        # the key record
    AvroSchema.from_type(Extras)                                    # a TypedDict
    AvroSchema.from_model(Order).extend(Extras)                     # both

    schema.record(order)      # the row as the datum to serialize with this schema

Record fields are named after the table's columns (``customer_id`` for a ``customer``
foreign key), as Debezium names them, so a schema built here reads Debezium's records of the
same table. :mod:`~django_messaging.kafka.schema.fields` has the type of each field.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings as django_settings
from django.db import models
from django.utils import timezone

from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.schema.fields import annotated_fields, django_field_to_avro

__all__ = ["AvroSchema", "from_avro", "model_columns", "to_avro"]

_MICROSECOND = dt.timedelta(microseconds=1)


def model_columns(
    model: type[models.Model], fields: Iterable[str] | None = None, exclude: bool = False
) -> dict[str, models.Field[Any, Any]]:
    """The concrete fields of ``model`` by column, in model order. ``fields`` names fields by
    name, attname or column (``"pk"`` is the primary key): only those, or all but those with
    ``exclude``. A name that is not a field of the model raises."""
    columns: dict[str, models.Field[Any, Any]] = {
        str(f.column): f
        for f in model._meta.concrete_fields  # type: ignore[attr-defined]
    }
    if fields is None:
        return columns
    chosen = {resolve_column(model, name) for name in fields}
    return {c: f for c, f in columns.items() if (c in chosen) != exclude}


def resolve_column(model: type[models.Model], name: str) -> str:
    """The column of the field ``name`` (a name, an attname, a column or ``"pk"``)."""
    meta = model._meta
    if name == "pk":
        return str(meta.pk.column)  # type: ignore[union-attr]
    for f in meta.concrete_fields:  # type: ignore[attr-defined]
        if name in (f.name, f.attname, f.column):
            return str(f.column)
    known = ", ".join(f.name for f in meta.concrete_fields)  # type: ignore[attr-defined]
    raise DjangoKafkaError(f"{model.__name__} has no column {name!r} (fields: {known}).")


def to_avro(field: models.Field[Any, Any], value: Any) -> Any:
    """A model field's value as the Avro datum of its type (see the fields module)."""
    if value is None:
        return None
    if isinstance(field, models.ForeignKey):
        return to_avro(field.target_field, value)
    if isinstance(field, models.JSONField):
        return json.dumps(value, cls=field.encoder, separators=(",", ":"), sort_keys=True)
    if isinstance(field, models.DurationField):
        return value // _MICROSECOND
    if isinstance(field, models.BinaryField):
        return bytes(value)
    if isinstance(field, models.FileField):
        return str(getattr(value, "name", value) or "")
    if isinstance(field, models.DecimalField):
        number = field.to_python(value)
        return number.quantize(decimal.Decimal(1).scaleb(-field.decimal_places))
    if isinstance(value, dt.datetime) and timezone.is_naive(value):
        # USE_TZ off: the wall time goes as if it were UTC, as Kafka Connect sends a column
        # without a time zone (and from_avro reads it back). Left naive, the encoder would
        # read it in the process's local zone, which Django sets to TIME_ZONE.
        return value.replace(tzinfo=dt.UTC)
    return value


def from_avro(field: models.Field[Any, Any], value: Any) -> Any:
    """The inverse of :func:`to_avro`: a datum read with the field's Avro type as the value
    to assign to the field (timestamps become naive when ``USE_TZ`` is off)."""
    if value is None:
        return None
    if isinstance(field, models.ForeignKey):
        return from_avro(field.target_field, value)
    if isinstance(field, models.JSONField):
        return json.loads(value, cls=field.decoder) if isinstance(value, str) else value
    if isinstance(field, models.DurationField) and isinstance(value, int):
        return dt.timedelta(microseconds=value)
    if (
        isinstance(field, models.DateTimeField)
        and isinstance(value, dt.datetime)
        and not django_settings.USE_TZ
        and timezone.is_aware(value)
    ):
        return timezone.make_naive(value, dt.UTC)
    return value


class AvroSchema:
    """An Avro record schema: ``name``, ``namespace`` and ``fields`` (Avro field dicts).

    Built from a model it remembers the model's fields, so :meth:`record` turns a row into
    the datum to serialize.
    """

    def __init__(
        self,
        name: str,
        fields: Sequence[dict[str, Any]],
        namespace: str | None = None,
        model_fields: dict[str, models.Field[Any, Any]] | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.fields = [dict(f) for f in fields]
        self.model_fields = dict(model_fields or {})

    def __repr__(self) -> str:
        return f"<AvroSchema {self.full_name} ({', '.join(self.field_names)})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AvroSchema) and self.to_dict() == other.to_dict()

    @property
    def full_name(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name

    @property
    def field_names(self) -> list[str]:
        return [str(f["name"]) for f in self.fields]

    # --- builders -------------------------------------------------------------------------

    @classmethod
    def from_model(
        cls,
        model: type[models.Model],
        fields: Iterable[str] | None = None,
        exclude: bool = False,
        namespace: str | None = None,
        name: str | None = None,
    ) -> AvroSchema:
        """The record of ``model``'s columns: all, only ``fields``, or all but ``fields``
        (``exclude=True``). Nullable fields are ``["null", type]`` with default ``null``; a
        field with a constant default of a plain type (int, str, bool, float) keeps it."""
        columns = model_columns(model, fields, exclude)
        avro_fields = []
        for column, field in columns.items():
            avro_type = django_field_to_avro(field)
            entry: dict[str, Any] = {"name": column}
            if field.null:
                entry.update(type=["null", avro_type], default=None)
            else:
                entry["type"] = avro_type
                default = _plain_default(field)
                if default is not None:
                    entry["default"] = default
            if field.help_text:
                entry["doc"] = str(field.help_text)
            avro_fields.append(entry)
        return cls(
            name or model.__name__,
            avro_fields,
            namespace=namespace if namespace is not None else model._meta.app_label,
            model_fields=columns,
        )

    @classmethod
    def key_from_model(
        cls,
        model: type[models.Model],
        fields: Iterable[str] | str = ("pk",),
        namespace: str | None = None,
        name: str | None = None,
    ) -> AvroSchema:
        """The key record of ``model``: the columns ``fields`` (default: the primary key),
        never nullable, named ``<Model>Key``."""
        names = [fields] if isinstance(fields, str) else list(fields)
        columns = model_columns(model)
        chosen = {c: columns[c] for c in (resolve_column(model, n) for n in names)}
        avro_fields = [{"name": c, "type": django_field_to_avro(f)} for c, f in chosen.items()]
        return cls(
            name or f"{model.__name__}Key",
            avro_fields,
            namespace=namespace if namespace is not None else model._meta.app_label,
            model_fields=chosen,
        )

    @classmethod
    def from_type(
        cls, annotated: type, namespace: str | None = None, name: str | None = None
    ) -> AvroSchema:
        """The record of a ``TypedDict`` (or any class with annotations): one field per
        annotation, ``T | None`` fields nullable with default ``null``."""
        return cls(name or annotated.__name__, annotated_fields(annotated), namespace=namespace)

    @classmethod
    def from_dict(cls, schema: dict[str, Any]) -> AvroSchema:
        if schema.get("type") != "record":
            raise DjangoKafkaError(f"not an Avro record schema: {schema!r}")
        return cls(schema["name"], schema["fields"], namespace=schema.get("namespace"))

    @classmethod
    def from_json(cls, schema_str: str) -> AvroSchema:
        return cls.from_dict(json.loads(schema_str))

    def extend(self, other: type | AvroSchema) -> AvroSchema:
        """A new schema with the fields of ``other`` (a ``TypedDict`` or a schema) appended;
        a field of the same name is replaced by the new one."""
        extra = other if isinstance(other, AvroSchema) else AvroSchema.from_type(other)
        names = set(extra.field_names)
        kept = [f for f in self.fields if f["name"] not in names]
        model_fields = {k: v for k, v in self.model_fields.items() if k not in names}
        model_fields.update(extra.model_fields)
        return AvroSchema(self.name, kept + extra.fields, self.namespace, model_fields)

    # --- output ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "record", "name": self.name}
        if self.namespace:
            schema["namespace"] = self.namespace
        schema["fields"] = copy.deepcopy(self.fields)
        return schema

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False, separators=(",", ":"))

    def record(self, instance: models.Model) -> dict[str, Any]:
        """``instance`` as the datum of this schema: each column's value converted to its
        Avro type (:func:`to_avro`). Fields added from a ``TypedDict`` are read as attributes
        of the instance when it has them."""
        datum: dict[str, Any] = {}
        for name in self.field_names:
            field = self.model_fields.get(name)
            if field is not None:
                datum[name] = to_avro(field, getattr(instance, field.attname))
            elif hasattr(instance, name):
                datum[name] = getattr(instance, name)
        return datum


def _plain_default(field: models.Field[Any, Any]) -> Any:
    if not field.has_default() or callable(field.default):
        return None
    default = field.default
    if isinstance(field, models.BooleanField) and isinstance(default, bool):
        return default
    if isinstance(field, models.IntegerField) and type(default) is int:
        return default
    if isinstance(field, models.FloatField) and isinstance(default, int | float):
        return float(default)
    if isinstance(field, models.CharField | models.TextField) and isinstance(default, str):
        return default
    return None
