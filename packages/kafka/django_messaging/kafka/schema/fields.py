"""Avro types of Django model fields and of Python annotations.

=====================================================  =============================================
Django field                                           Avro type
=====================================================  =============================================
``AutoField``, ``IntegerField``, ``SmallIntegerField``  ``int``
(and their positive and auto variants)
``BigAutoField``, ``BigIntegerField``,                 ``long``
``PositiveBigIntegerField``
``FloatField``                                         ``double``
``BooleanField``                                       ``boolean``
``CharField``, ``TextField`` and their subclasses,     ``string``
``GenericIPAddressField``, ``FileField`` (its name)
``JSONField``                                          ``string`` (the JSON text)
``UUIDField``                                          ``string``, logical type ``uuid``
``DecimalField``                                       ``bytes``, logical type ``decimal`` with the
                                                       field's ``max_digits`` and ``decimal_places``
``DateField``                                          ``int``, logical type ``date``
``DateTimeField``                                      ``long``, logical type ``timestamp-micros``
``TimeField``                                          ``long``, logical type ``time-micros``
``DurationField``                                      ``long`` (microseconds)
``BinaryField``                                        ``bytes``
``ForeignKey``, ``OneToOneField``                      the type of the target field (usually the pk)
=====================================================  =============================================

Date-times and times are written with microseconds, the precision Django stores (django-kafka
writes milliseconds, which drops the microseconds of every ``DateTimeField``). A field with
``choices`` keeps the type of its values. A field that is ``null=True`` becomes the union
``["null", type]`` with default ``null``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
import uuid
from typing import Any

from django.db import models

from django_messaging.kafka.exceptions import DjangoKafkaError

__all__ = ["UnsupportedType", "annotated_fields", "django_field_to_avro", "python_type_to_avro"]

AvroType = Any

_LONG: AvroType = "long"
_BY_FIELD: list[tuple[type[models.Field[Any, Any]], AvroType]] = [
    # most specific first: BigAutoField is an AutoField, PositiveBigIntegerField an IntegerField
    (models.BigAutoField, _LONG),
    (models.BigIntegerField, _LONG),
    (models.PositiveBigIntegerField, _LONG),
    (models.AutoField, "int"),
    (models.SmallAutoField, "int"),
    (models.IntegerField, "int"),
    (models.FloatField, "double"),
    (models.BooleanField, "boolean"),
    (models.UUIDField, {"type": "string", "logicalType": "uuid"}),
    (models.DateTimeField, {"type": "long", "logicalType": "timestamp-micros"}),
    (models.DateField, {"type": "int", "logicalType": "date"}),
    (models.TimeField, {"type": "long", "logicalType": "time-micros"}),
    (models.DurationField, _LONG),
    (models.BinaryField, "bytes"),
    (models.JSONField, "string"),
    (models.GenericIPAddressField, "string"),
    (models.FileField, "string"),
    (models.FilePathField, "string"),
    (models.CharField, "string"),
    (models.TextField, "string"),
]


class UnsupportedType(DjangoKafkaError):
    """A field or annotation has no Avro type here; exclude it or give the schema by hand."""


def django_field_to_avro(field: models.Field[Any, Any]) -> AvroType:
    """The Avro type of ``field`` (without the ``null`` union of a nullable field)."""
    if isinstance(field, models.ForeignKey):  # OneToOneField too
        return django_field_to_avro(field.target_field)
    if isinstance(field, models.DecimalField):
        return {
            "type": "bytes",
            "logicalType": "decimal",
            "precision": field.max_digits,
            "scale": field.decimal_places,
        }
    for field_class, avro_type in _BY_FIELD:
        if isinstance(field, field_class):
            return dict(avro_type) if isinstance(avro_type, dict) else avro_type
    raise UnsupportedType(
        f"{field.model.__name__}.{field.name} is a {type(field).__name__}, which has no Avro "
        "type here: leave it out of the schema (fields/exclude) or write the schema by hand."
    )


_BY_PYTHON: dict[Any, AvroType] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
    uuid.UUID: {"type": "string", "logicalType": "uuid"},
    dt.datetime: {"type": "long", "logicalType": "timestamp-micros"},
    dt.date: {"type": "int", "logicalType": "date"},
    dt.time: {"type": "long", "logicalType": "time-micros"},
    dt.timedelta: "long",
}


def python_type_to_avro(annotation: Any, owner: str = "", seen: set[str] | None = None) -> AvroType:
    """The Avro type of an annotation: ``str``, ``int`` (``long``), ``float``, ``bool``,
    ``bytes``, ``UUID``, ``datetime``, ``date``, ``time``, ``timedelta``, ``T | None``
    (``["null", T]``), ``list[T]`` (array), ``dict[str, T]`` (map) and nested ``TypedDict``
    (record; named once, then referred to by name). ``Decimal`` needs a precision, which an
    annotation does not give: it is refused."""
    seen = set() if seen is None else seen
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) != 1:
            raise UnsupportedType(f"{owner}: only 'T | None' unions map to Avro, not {annotation}")
        inner = python_type_to_avro(members[0], owner, seen)
        return ["null", inner] if len(members) < len(args) else inner
    if origin in (typing.Required, typing.NotRequired):  # type: ignore[comparison-overlap]
        return python_type_to_avro(args[0], owner, seen)
    if origin is list:
        return {"type": "array", "items": python_type_to_avro(args[0], owner, seen)}
    if origin is dict:
        if args and args[0] is not str:
            raise UnsupportedType(f"{owner}: Avro maps have string keys, not {args[0]}")
        return {"type": "map", "values": python_type_to_avro(args[1], owner, seen)}
    if typing.is_typeddict(annotation):
        if annotation.__name__ in seen:
            return annotation.__name__
        seen.add(annotation.__name__)
        return {
            "type": "record",
            "name": annotation.__name__,
            "fields": annotated_fields(annotation, seen),
        }
    if annotation is decimal.Decimal:
        raise UnsupportedType(
            f"{owner}: Decimal has no precision in an annotation; use a model field "
            "(DecimalField) or write the Avro type by hand"
        )
    found = _BY_PYTHON.get(annotation)
    if found is None:
        raise UnsupportedType(f"{owner}: {annotation!r} has no Avro type here")
    return dict(found) if isinstance(found, dict) else found


def annotated_fields(annotated: type, seen: set[str] | None = None) -> list[dict[str, Any]]:
    """The Avro fields of a class's annotations (a ``TypedDict``): ``T | None`` fields are
    nullable with default ``null``."""
    seen = {annotated.__name__} if seen is None else seen
    fields = []
    for name, annotation in typing.get_type_hints(annotated).items():
        avro_type = python_type_to_avro(annotation, f"{annotated.__name__}.{name}", seen)
        entry: dict[str, Any] = {"name": name, "type": avro_type}
        if isinstance(avro_type, list) and avro_type[0] == "null":
            entry["default"] = None
        fields.append(entry)
    return fields
