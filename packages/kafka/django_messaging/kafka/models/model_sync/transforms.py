"""Transforms of model sync, beside those of :mod:`django_messaging.kafka.topic.transforms`.

* :class:`SyncMethodTransform`: a method of the ``ModelSync`` computes a field:
  ``enrich_<source>(key, value)`` in the enricher, ``consume_<source>(key, value)`` in the sink.
* :class:`RelationTransform`: the sink replaces a field of the message with the row it names
  (what ``Relation(..., fk=...)`` adds).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from django_messaging.kafka.topic.reproducer import TopicReproducer
from django_messaging.kafka.topic.transforms import (
    MessagePart,
    Transform,
    TransformContext,
    _check_part,
)

__all__ = ["RelationTransform", "SyncMethodTransform"]


class SyncMethodTransform(Transform):
    """Sets ``target`` (default: ``source``) to what a method of the sync returns for the
    message: ``enrich_<source>(key, value)`` when the enricher runs it, ``consume_<source>(key,
    value)`` when the sink does (a static or class method). With ``replace`` (the default) a
    ``source`` other than ``target`` is removed. ``apply_to``: the value (the default), the
    key (``MessagePart.KEY``) or both; the method receives the message's key and value either
    way (as the step found them), and its result goes to the side being rewritten."""

    def __init__(
        self,
        source: str,
        target: str | None = None,
        replace: bool = True,
        apply_to: MessagePart = MessagePart.VALUE,
    ) -> None:
        self.apply_to = _check_part(f"SyncMethodTransform({source!r})", apply_to)
        self.source = source
        self.target = target or source
        self.replace = replace

    @property
    def name(self) -> str:
        return f"SyncMethodTransform({self.source!r} -> {self.target!r})"

    def method_name(self, context: TransformContext) -> str:
        stage = "enrich" if isinstance(context.topic, TopicReproducer) else "consume"
        return f"{stage}_{self.source}"

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        sync = getattr(context.topic, "model_sync", None)
        name = self.method_name(context)
        method = getattr(sync, name, None)
        if method is None:
            raise AttributeError(
                f"{getattr(sync, '__qualname__', sync)} has no method {name}(key, value)"
            )
        if context.part is MessagePart.KEY:
            value[self.target] = method(context.key, context.value)
        else:
            value[self.target] = method(context.key, value)
        if self.replace and self.target != self.source:
            value.pop(self.source, None)
        return value


class RelationTransform(Transform):
    """Replaces ``source`` (a value of ``model``'s ``id_field``) with that row, assigned to the
    foreign key ``target``; ``None`` stays ``None``. The relations resolver has waited for the
    row, so a missing one is an error (the message goes to the topic's failure policy)."""

    def __init__(
        self, source: str, target: str, model: type[models.Model], id_field: str = "pk"
    ) -> None:
        self.source = source
        self.target = target
        self.model = model
        self.id_field = id_field

    @property
    def name(self) -> str:
        return f"RelationTransform({self.source!r} -> {self.target!r})"

    def apply(self, value: dict[str, Any], context: TransformContext) -> dict[str, Any]:
        if self.source not in value:
            return value
        found = value.pop(self.source)
        value[self.target] = (
            None if found is None else self.model._default_manager.get(**{self.id_field: found})
        )
        return value
