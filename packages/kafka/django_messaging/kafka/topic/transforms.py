"""Transforms: steps that rewrite a message's value (a dict of fields) before it is written,
and its key when they are told to (``apply_to``).

A model consumer (``ModelTopicConsumer``, ``DbzModelTopicConsumer``) or a ``TopicReproducer``
lists them in ``transforms``; they run in order, each one receiving the previous one's result::

    transforms = [
        FieldTransform("title", rename_to="name"),
        FieldTransform("internal", drop=True),
        MappingTransform("status", {"A": "active", "I": "inactive"}),
        EpochToDateTransform("released", unit="days"),
        ContentTypeTransform("target_type"),
        EnricherTransform(lambda value, context: {"slug": slugify(value["name"])}),
    ]

Each step applies to the value unless ``apply_to`` says otherwise: ``MessagePart.KEY`` (the
key, a dict of fields) or ``MessagePart.BOTH`` (each side on its own, the same way)::

    FieldTransform("code", rename_to="id", apply_to=MessagePart.BOTH)

A model consumer looks the row up by the transformed key, and the key of a deletion (a
tombstone) is transformed too; a reproducer produces the transformed key, tombstones included.
A step that applies to the key fails on a key that is not a dict.

A transform that raises fails the message with a :class:`TransformError` naming the transform;
the topic's failure policy (retries, dead letter topic) handles it like any other failure.

Debezium's temporal types: ``io.debezium.time.Date`` (days since the epoch), ``Timestamp``
(milliseconds), ``MicroTimestamp`` (microseconds), ``NanoTimestamp`` (nanoseconds);
``EpochToDateTransform`` / ``EpochToDatetimeTransform`` read them, ``DateToEpochTransform``
writes them.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Flag, auto
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings as django_settings

from django_messaging.kafka.exceptions import DjangoKafkaError

if TYPE_CHECKING:
    from django.db import models

__all__ = [
    "Chain",
    "ContentTypeTransform",
    "DateToEpochTransform",
    "EnricherTransform",
    "EpochToDateTransform",
    "EpochToDatetimeTransform",
    "FieldTransform",
    "MappingTransform",
    "MessagePart",
    "Transform",
    "TransformContext",
    "TransformError",
    "apply_message_transforms",
    "apply_transforms",
    "days_from_epoch_to_date",
]

EPOCH = dt.date(1970, 1, 1)
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Units of an epoch number and how many of them make a second (``days``: special-cased).
EpochUnit = Literal["days", "s", "ms", "us", "ns"]
_PER_SECOND: dict[str, int] = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_MISSING: Any = object()


def days_from_epoch_to_date(days: int | Literal[""] | None, default: Any = None) -> dt.date | Any:
    """Debezium's ``io.debezium.time.Date`` (days since 1970-01-01) as a ``date``; ``default``
    when the value is empty (``None`` or ``""``)."""
    if days is None or days == "":
        return default
    return EPOCH + dt.timedelta(days=days)


class MessagePart(Flag):
    """The side(s) of a message a transform applies to: ``KEY``, ``VALUE`` (the default) or
    ``BOTH``."""

    KEY = auto()
    VALUE = auto()
    BOTH = KEY | VALUE


def _check_part(owner: str, apply_to: Any) -> MessagePart:
    if not isinstance(apply_to, MessagePart) or not apply_to:
        raise DjangoKafkaError(
            f"{owner}: apply_to must be MessagePart.KEY, MessagePart.VALUE or MessagePart.BOTH, "
            f"not {apply_to!r}."
        )
    return apply_to


class TransformError(DjangoKafkaError):
    """A transform failed on a message; ``transform`` is its name."""

    def __init__(self, transform: str, reason: str) -> None:
        super().__init__(f"transform {transform} failed: {reason}")
        self.transform = transform
        self.reason = reason


@dataclass(frozen=True)
class TransformContext:
    """What a transform may look at besides the fields it rewrites: the message key, the model
    being written (``None`` for a reproducer), the topic consumer, the message's topic name, the
    part being rewritten and the message's value (``None`` for a tombstone).

    ``key`` and ``value`` are the message as the step received it: when a step applies to both
    sides, each side sees the other one unchanged by the step."""

    key: Any = None
    model: type[models.Model] | None = None
    topic: Any = None
    topic_name: str = ""
    part: MessagePart = MessagePart.VALUE
    value: Any = None


class Transform(ABC):
    """One step of a pipeline: ``transform(value, context)`` returns the new value (a dict).

    Subclasses implement :meth:`apply`; they may change ``value`` in place and return it.
    ``name`` appears in error messages (default: the class name and its arguments).
    ``apply_to`` (:class:`MessagePart`): the side(s) of the message it rewrites; on the key,
    ``apply`` receives a copy of the key as ``value`` and ``context.part`` is ``KEY``.
    """

    apply_to: MessagePart = MessagePart.VALUE

    @abstractmethod
    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        """Return the transformed value."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def __call__(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        return self.apply(value, context)

    def __repr__(self) -> str:
        return self.name


def _run(transform: Transform, fields: dict[str, Any], context: TransformContext) -> dict[str, Any]:
    try:
        result = transform(fields, context)
    except TransformError:
        raise
    except Exception as exc:
        raise TransformError(transform.name, f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(result, dict):
        raise TransformError(
            transform.name, f"returned {type(result).__name__}, not a dict of fields"
        )
    return result


def apply_transforms(
    transforms: Iterable[Transform], value: dict[str, Any], context: TransformContext
) -> dict[str, Any]:
    """Run the ``transforms`` that apply to the value, in order; any failure becomes a
    :class:`TransformError` naming the transform that failed."""
    for transform in transforms:
        if transform.apply_to & MessagePart.VALUE:
            value = _run(transform, value, replace(context, part=MessagePart.VALUE, value=value))
    return value


def apply_message_transforms(
    transforms: Iterable[Transform],
    key: Any,
    value: dict[str, Any] | None,
    context: TransformContext,
    parts: MessagePart = MessagePart.BOTH,
) -> tuple[Any, dict[str, Any] | None]:
    """Run ``transforms`` in order on the key and the value, each step on the side(s) of its
    ``apply_to`` (limited to ``parts``); a ``None`` value (a tombstone) is left as it is.
    Returns the new ``(key, value)``."""
    for transform in transforms:
        new_key = key
        if transform.apply_to & parts & MessagePart.KEY:
            if not isinstance(key, dict):
                raise TransformError(
                    transform.name,
                    f"applies to the key, which is {type(key).__name__}, not a dict of fields",
                )
            step = replace(context, key=key, value=value, part=MessagePart.KEY)
            new_key = _run(transform, dict(key), step)
        if value is not None and transform.apply_to & parts & MessagePart.VALUE:
            step = replace(context, key=key, value=value, part=MessagePart.VALUE)
            value = _run(transform, value, step)
        key = new_key
    return key, value


class Chain(Transform):
    """Several transforms as one (a reusable piece of a pipeline). The chain's ``apply_to``
    decides which side(s) it rewrites; its steps all run on that side."""

    def __init__(self, *transforms: Transform, apply_to: MessagePart = MessagePart.VALUE) -> None:
        self.transforms = transforms
        self.apply_to = _check_part("Chain", apply_to)

    @property
    def name(self) -> str:
        return f"Chain({', '.join(t.name for t in self.transforms)})"

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        for transform in self.transforms:
            value = _run(transform, value, context)
        return value


class _FieldStep(Transform):
    """A transform of one field; ``target`` is where the result goes (default: the field)."""

    field: str

    @property
    def name(self) -> str:
        return f"{type(self).__name__}({self.field!r})"


class FieldTransform(_FieldStep):
    """Renames, drops or defaults one field.

    - ``rename_to="name"``: the value moves to ``name`` (a missing field stays missing);
    - ``drop=True``: the field is removed;
    - ``default=...``: the value when the field is missing (or ``None`` with
      ``default_if_none=True``); a callable default is called (``default=list``);
    - ``required=True``: a missing field (without a default) is an error.
    """

    def __init__(
        self,
        field: str,
        *,
        rename_to: str | None = None,
        drop: bool = False,
        default: Any = _MISSING,
        default_if_none: bool = False,
        required: bool = False,
        apply_to: MessagePart = MessagePart.VALUE,
    ) -> None:
        self.apply_to = _check_part(f"FieldTransform({field!r})", apply_to)
        if drop and (rename_to is not None or default is not _MISSING or required):
            raise DjangoKafkaError(
                f"FieldTransform({field!r}): drop=True takes no rename_to, default or required."
            )
        self.field = field
        self.rename_to = rename_to
        self.drop = drop
        self.default = default
        self.default_if_none = default_if_none
        self.required = required

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        field = self.field
        if self.drop:
            value.pop(field, None)
            return value
        if field not in value or (self.default_if_none and value[field] is None):
            if self.default is not _MISSING:
                value[field] = self.default() if callable(self.default) else self.default
            elif self.required:
                raise KeyError(f"the message has no field {field!r}")
        if self.rename_to is not None and field in value:
            value[self.rename_to] = value.pop(field)
        return value


class MappingTransform(_FieldStep):
    """Maps a field's value through a dict (or any mapping) or a function.

    With a mapping, a value that is not a key is an error unless ``default`` is given
    (``default=MappingTransform.KEEP`` keeps the value). ``None`` passes through unless it is a
    key of the mapping. ``target``: write the result to another field (the source stays).
    """

    KEEP: Any = object()

    def __init__(
        self,
        field: str,
        mapping: Mapping[Any, Any] | Callable[[Any], Any],
        *,
        default: Any = _MISSING,
        target: str | None = None,
        apply_to: MessagePart = MessagePart.VALUE,
    ) -> None:
        self.apply_to = _check_part(f"MappingTransform({field!r})", apply_to)
        self.field = field
        self.mapping = mapping
        self.default = default
        self.target = target or field

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        if self.field not in value:
            return value
        current = value[self.field]
        mapping = self.mapping
        if isinstance(mapping, Mapping):
            if current in mapping:
                result = mapping[current]
            elif current is None:
                result = None
            elif self.default is MappingTransform.KEEP:
                result = current
            elif self.default is not _MISSING:
                result = self.default
            else:
                raise KeyError(f"{current!r} is not in the mapping of {self.field!r}")
        else:
            result = mapping(current)
        value[self.target] = result
        return value


class ContentTypeTransform(_FieldStep):
    """Turns an ``"app_label.model"`` string into the ``ContentType`` id (``to="id"``, the
    default) or an id back into ``"app_label.model"`` (``to="label"``).

    An unknown model is an error. ``target``: write the result to another field and drop the
    source (``ContentTypeTransform("type", target="content_type_id")``). Uses Django's
    ``ContentType`` cache: one query per content type and process.
    """

    def __init__(
        self,
        field: str,
        *,
        to: Literal["id", "label"] = "id",
        target: str | None = None,
        apply_to: MessagePart = MessagePart.VALUE,
    ) -> None:
        self.apply_to = _check_part(f"ContentTypeTransform({field!r})", apply_to)
        if to not in ("id", "label"):
            raise DjangoKafkaError(f"ContentTypeTransform({field!r}): to must be 'id' or 'label'.")
        self.field = field
        self.to = to
        self.target = target

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        if self.field not in value:
            return value
        current = value.pop(self.field) if self.target else value[self.field]
        value[self.target or self.field] = self.convert(current)
        return value

    def convert(self, current: Any) -> Any:
        from django.contrib.contenttypes.models import ContentType

        if current is None or current == "":
            return None
        manager = ContentType.objects
        if self.to == "id":
            if not isinstance(current, str) or current.count(".") != 1:
                raise ValueError(f"{current!r} is not an 'app_label.model' string")
            app_label, model = current.lower().split(".")
            try:
                return manager.get_by_natural_key(app_label, model).pk
            except ContentType.DoesNotExist:
                raise LookupError(f"no content type {current!r}") from None
        try:
            content_type = manager.get_for_id(int(current))
        except ContentType.DoesNotExist:
            raise LookupError(f"no content type with id {current!r}") from None
        return f"{content_type.app_label}.{content_type.model}"


def _check_unit(owner: str, unit: str, allowed: Iterable[str]) -> None:
    if unit not in allowed:
        raise DjangoKafkaError(f"{owner}: unit must be one of {', '.join(allowed)}, not {unit!r}.")


class _EpochStep(_FieldStep):
    """A transform between an epoch number and a date: ``unit`` (``units`` allowed, default
    ``default_unit``) and ``target`` (default: the field)."""

    units: tuple[str, ...] = ("days", *_PER_SECOND)
    default_unit: EpochUnit = "days"

    def __init__(
        self,
        field: str,
        *,
        unit: EpochUnit | None = None,
        target: str | None = None,
        apply_to: MessagePart = MessagePart.VALUE,
    ) -> None:
        self.apply_to = _check_part(f"{type(self).__name__}({field!r})", apply_to)
        self.unit = unit or self.default_unit
        _check_unit(f"{type(self).__name__}({field!r})", self.unit, self.units)
        self.field = field
        self.target = target or field


class EpochToDateTransform(_EpochStep):
    """An epoch number as a ``date``: ``unit="days"`` (Debezium ``Date``, the default) or
    ``"s"``/``"ms"``/``"us"``/``"ns"`` (the UTC date of that instant). ``None`` and ``""``
    become ``None``."""

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        if self.field in value:
            number = value[self.field]
            if number is None or number == "":
                value[self.target] = None
            elif self.unit == "days":
                value[self.target] = days_from_epoch_to_date(int(number))
            else:
                value[self.target] = _from_epoch(number, self.unit).date()
        return value


class EpochToDatetimeTransform(_EpochStep):
    """An epoch number (``unit``: ``"ms"``, Debezium ``Timestamp``, the default; ``"us"``,
    ``MicroTimestamp``; ``"s"``; ``"ns"``) as a UTC ``datetime``, aware when ``USE_TZ``.
    ``None`` and ``""`` become ``None``."""

    units = tuple(_PER_SECOND)
    default_unit: EpochUnit = "ms"

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        if self.field in value:
            number = value[self.field]
            if number is None or number == "":
                value[self.target] = None
            else:
                moment = _from_epoch(number, self.unit)
                value[self.target] = (
                    moment if django_settings.USE_TZ else moment.replace(tzinfo=None)
                )
        return value


class DateToEpochTransform(_EpochStep):
    """The reverse: a ``date``/``datetime`` (or its ISO string) as an epoch number in ``unit``
    (``"days"`` for a date, the default; ``"s"``/``"ms"``/``"us"``/``"ns"``). A naive
    datetime is taken as UTC. ``None`` stays ``None``."""

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        if self.field not in value:
            return value
        current = value[self.field]
        if current is None:
            value[self.target] = None
            return value
        if isinstance(current, str):
            current = (
                dt.datetime.fromisoformat(current)
                if "T" in current or " " in current
                else dt.date.fromisoformat(current)
            )
        if isinstance(current, dt.datetime):
            moment = current if current.tzinfo else current.replace(tzinfo=dt.UTC)
        elif isinstance(current, dt.date):
            moment = dt.datetime.combine(current, dt.time(), tzinfo=dt.UTC)
        else:
            raise TypeError(f"{current!r} is not a date, datetime or ISO string")
        delta = moment - EPOCH_UTC
        if self.unit == "days":
            value[self.target] = delta.days
        else:
            micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
            value[self.target] = micros * _PER_SECOND[self.unit] // 1_000_000
        return value


def _from_epoch(number: Any, unit: str) -> dt.datetime:
    per_second = _PER_SECOND[unit]
    whole = int(number)
    seconds, rest = divmod(whole, per_second)
    micros = rest * 1_000_000 // per_second
    return EPOCH_UTC + dt.timedelta(seconds=seconds, microseconds=micros)


class EnricherTransform(Transform):
    """Adds fields computed by ``function(value, context)``, which returns a mapping of them
    (it may query the database; ``context.model`` and ``context.key`` are at hand).

    Fields the message has already are kept unless ``overwrite=True``.
    """

    def __init__(
        self,
        function: Callable[[dict[str, Any], TransformContext], Mapping[str, Any]],
        *,
        overwrite: bool = False,
        name: str | None = None,
        apply_to: MessagePart = MessagePart.VALUE,
    ) -> None:
        self.apply_to = _check_part("EnricherTransform", apply_to)
        self.function = function
        self.overwrite = overwrite
        self._name = name or getattr(function, "__name__", "function")

    @property
    def name(self) -> str:
        return f"EnricherTransform({self._name})"

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        extra = self.function(value, context)
        if not isinstance(extra, Mapping):
            raise TypeError(f"{self._name} returned {type(extra).__name__}, not a mapping")
        for field, field_value in extra.items():
            if self.overwrite or field not in value:
                value[field] = field_value
        return value
