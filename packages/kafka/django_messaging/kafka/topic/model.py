"""``ModelTopicConsumer``: keep Django model rows in sync with the messages of a topic."""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

from confluent_kafka.serialization import MessageField
from django.conf import settings as django_settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import Q

from django_messaging.core.datetimes import as_stored
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic import TopicConsumer, upsert
from django_messaging.kafka.topic.transforms import (
    MessagePart,
    Transform,
    TransformContext,
    apply_message_transforms,
)
from django_messaging.kafka.utils.message import Message

__all__ = ["ModelTopicConsumer"]


class ModelTopicConsumer(TopicConsumer):
    """Creates, updates and deletes ``model`` rows from messages (key and value: dicts).

    Define :meth:`is_deletion` and :meth:`get_lookup_kwargs`. Fields of the value that are not
    model fields are ignored; ``exclude_fields`` drops more; ``transform_<field>(model,
    field_name, field_value)`` returns ``(new_name, new_value)``.

    ``bulk = True`` takes the batched upsert path: each batch the consumer receives becomes one
    transaction with one ``INSERT ... ON CONFLICT DO UPDATE`` per model (and one ``DELETE`` for
    deletions), the last message per row winning. It skips ``save()`` and model signals, and
    needs a lookup on unique fields. When a batch fails, its messages are handled one by one,
    so retries and dead letters still concern single messages.

    ``transforms``: :mod:`~django_messaging.kafka.topic.transforms` steps run in order on the
    value of each message that is not a deletion, before ``transform_<field>`` and the write;
    steps with ``apply_to=MessagePart.KEY`` (or ``BOTH``) rewrite the key (of deletions too),
    and :meth:`get_lookup_kwargs` then reads the transformed key and value.
    """

    model: ClassVar[type[models.Model] | None] = None
    exclude_fields: ClassVar[list[str] | None] = []
    bulk: ClassVar[bool] = False
    transforms: ClassVar[Sequence[Transform]] = ()
    key_deserializer: ClassVar[Any] = "json"
    value_deserializer: ClassVar[Any] = "json"

    def get_model(self, key: Any, value: Any) -> type[models.Model]:
        if self.model is None:
            raise DjangoKafkaError(f"{type(self).__name__}: set `model` or override get_model().")
        return self.model

    @abstractmethod
    def is_deletion(self, model: type[models.Model], key: Any, value: Any) -> bool:
        """Does the message mean the row is deleted?"""

    @abstractmethod
    def get_lookup_kwargs(self, model: type[models.Model], key: Any, value: Any) -> dict[str, Any]:
        """The filter that finds the row of this message, e.g. ``{"id": key}``."""

    def transform(self, model: type[models.Model], value: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        exclude = self.exclude_fields or ()
        for name, field_value in value.items():
            if name in exclude:
                continue
            method = getattr(self, f"transform_{name}", None)
            if method is not None:
                name, field_value = method(model, name, field_value)
            result[name] = field_value
        return result

    def transforms_key(self) -> bool:
        """Does a step of ``transforms`` rewrite the key? Then :meth:`get_lookup_kwargs` reads
        the transformed key and value; otherwise, as ever, the message's own."""
        return any(t.apply_to & MessagePart.KEY for t in self.transforms)

    def transform_message(
        self,
        model: type[models.Model],
        key: Any,
        value: Any,
        parts: MessagePart = MessagePart.BOTH,
    ) -> tuple[Any, Any]:
        """``(key, value)`` through the steps of ``transforms`` that apply to ``parts`` (a
        failure raises ``TransformError``); of a deletion only the key is transformed."""
        if not self.transforms:
            return key, value
        context = TransformContext(key, model, self, self.name)
        return apply_message_transforms(self.transforms, key, value, context, parts)

    def apply_transforms(
        self, model: type[models.Model], key: Any, value: dict[str, Any]
    ) -> dict[str, Any]:
        """``value`` through ``transforms`` (a failure raises ``TransformError``)."""
        return self.transform_message(model, key, value, MessagePart.VALUE)[1]  # type: ignore[no-any-return]

    def get_defaults(self, model: type[models.Model], value: dict[str, Any]) -> dict[str, Any]:
        """The ``update_or_create`` defaults from the already transformed ``value``: the model's
        fields only (``fk`` and ``fk_id`` both work), plus ``kafka_skip=True`` for a
        ``KafkaConnectSkipModel`` so a connector does not publish the synced row again."""
        known = model._meta._forward_fields_map  # type: ignore[attr-defined]
        defaults = {k: v for k, v in value.items() if k in known}
        if not django_settings.USE_TZ:
            _local_datetimes(model, defaults)
        if _is_skip_model(model):
            defaults["kafka_skip"] = True
        return defaults

    def sync(
        self, model: type[models.Model], key: Any, value: Any
    ) -> tuple[models.Model, bool] | None:
        """Apply one message: ``update_or_create()``'s ``(obj, created)``, ``None`` for a deletion."""
        keyed = self.transforms_key()
        lookup = None if keyed else self.get_lookup_kwargs(model, key, value)
        if self.is_deletion(model, key, value):
            if lookup is None:
                key, value = self.transform_message(model, key, value, MessagePart.KEY)
                lookup = self.get_lookup_kwargs(model, key, value)
            try:
                instance = model._default_manager.get(**lookup)
            except ObjectDoesNotExist:
                return None
            with _synced_deletes(model):
                instance.delete()
            return None
        if not isinstance(value, dict):
            raise DjangoKafkaError(
                f"{type(self).__name__}: the message value must be a dict of fields, got "
                f"{type(value).__name__}."
            )
        key, value = self.transform_message(model, key, value)
        if lookup is None:
            lookup = self.get_lookup_kwargs(model, key, value)
        defaults = self.get_defaults(model, self.transform(model, value))
        return upsert.update_or_create(model, lookup, defaults)

    def read(self, msg: Message) -> tuple[Any, Any]:
        headers = msg.headers()
        key = self.deserialize(msg.key(), MessageField.KEY, headers)
        value = self.deserialize(msg.value(), MessageField.VALUE, headers)
        return key, value

    def consume(self, msg: Message) -> Any:
        key, value = self.read(msg)
        return self.sync(self.get_model(key, value), key, value)

    # --- batched path (bulk = True) -------------------------------------------------------

    def consume_batch(self, msgs: list[Message]) -> None:
        """Apply a batch: the last message per row wins; one upsert and one delete per model."""
        latest: dict[
            tuple[Any, ...], tuple[type[models.Model], dict[str, Any], dict[str, Any] | None]
        ] = {}
        keyed = self.transforms_key()
        for msg in msgs:
            key, value = self.read(msg)
            model = self.get_model(key, value)
            lookup = None if keyed else self.get_lookup_kwargs(model, key, value)
            if self.is_deletion(model, key, value):
                if keyed:
                    key, value = self.transform_message(model, key, value, MessagePart.KEY)
                row: dict[str, Any] | None = None
            elif isinstance(value, dict):
                key, value = self.transform_message(model, key, value)
                row = self.get_defaults(model, self.transform(model, value))
            else:
                raise DjangoKafkaError(f"{type(self).__name__}: message value is not a dict")
            if lookup is None:
                lookup = self.get_lookup_kwargs(model, key, value)
            marker = (model, tuple(sorted(lookup.items())))
            latest.pop(marker, None)  # keep the order of the last write
            latest[marker] = (model, lookup, row)
        upserts: dict[tuple[Any, ...], list[models.Model]] = defaultdict(list)
        deletes: dict[type[models.Model], list[dict[str, Any]]] = defaultdict(list)
        for model, lookup, row in latest.values():
            if row is None:
                deletes[model].append(lookup)
                continue
            fields = {**row, **lookup}
            unique = tuple(sorted(_field_name(model, k) for k in lookup))
            update = tuple(
                sorted(_field_name(model, k) for k in row if _field_name(model, k) not in unique)
            )
            upserts[(model, unique, update)].append(model(**fields))
        for model, lookups in deletes.items():
            query = Q()
            for lookup in lookups:
                query |= Q(**lookup)
            with _synced_deletes(model):
                model._default_manager.filter(query).delete()
        for (model, unique, update), objs in upserts.items():
            manager = model._default_manager
            if update:
                manager.bulk_create(
                    objs,
                    update_conflicts=True,
                    unique_fields=list(unique),
                    update_fields=list(update),
                )
            else:
                manager.bulk_create(objs, ignore_conflicts=True)


def _is_skip_model(model: type[models.Model]) -> bool:
    # Imported here, not at the top: a models module cannot be imported before the app
    # registry is ready, and this module can be.
    from django_messaging.kafka.connect.models import KafkaConnectSkipModel

    return issubclass(model, KafkaConnectSkipModel)


def _synced_deletes(model: type[models.Model]) -> AbstractContextManager[None]:
    """Deletes of rows synced from Kafka carry ``kafka_skip=True`` (cascades included)."""
    if not _is_skip_model(model):
        return nullcontext()
    from django_messaging.kafka.connect.models import skip_writes

    return skip_writes(True)


def _field_name(model: type[models.Model], name: str) -> str:
    if name == "pk":
        return model._meta.pk.name  # type: ignore[union-attr]
    return model._meta.get_field(name).name


def _local_datetimes(model: type[models.Model], defaults: dict[str, Any]) -> None:
    """Without ``USE_TZ``: the datetimes of ``defaults`` sent with an offset (Debezium's
    ``ZonedTimestamp``, an ISO string ending in ``Z``) as naive time in ``TIME_ZONE``, as Django
    stores them; SQLite and MySQL refuse an aware value then."""
    fields = _datetime_fields(model)
    for name in fields.keys() & defaults.keys():
        value = defaults[name]
        if value is not None and not hasattr(value, "resolve_expression"):
            value = fields[name].to_python(value)
            defaults[name] = as_stored(value) if isinstance(value, dt.datetime) else value


def _datetime_fields(model: type[models.Model]) -> dict[str, models.DateTimeField[Any, Any]]:
    """The model's datetime fields by name and by attname."""
    found = model.__dict__.get("_kafka_datetime_fields")
    if found is None:
        found = {}
        for field in model._meta.concrete_fields:
            if isinstance(field, models.DateTimeField):
                found[field.name] = found[field.attname] = field
        model._kafka_datetime_fields = found  # type: ignore[attr-defined]
    return found  # type: ignore[no-any-return]
