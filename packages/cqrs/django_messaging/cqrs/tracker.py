"""Remember the values of ``CQRS_TRACKED_FIELDS`` as loaded, to send them as ``previous_data``.

The keys are the ones django-cqrs sends, because replicas written for it read them: a new
instance lists its tracked fields that have a value, each as ``None``, under the attribute name
(``parent_id`` for a foreign key); a saved instance lists the tracked fields that changed, with
their previous value, under the field name (``parent``); ``Model.cqrs.bulk_update`` sends every
tracked field's previous value under the attribute name. ``'__all__'`` tracks every concrete
field, ``cqrs_revision`` included.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import signals

from django_messaging.cqrs.constants import ALL_BASIC_FIELDS
from django_messaging.cqrs.serialization import to_wire

_SNAPSHOT = "_cqrs_tracker_snapshot"


class CQRSTracker:
    """Snapshots the tracked fields when an instance is loaded or saved (no extra queries)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        tracked = model.CQRS_TRACKED_FIELDS
        concrete = list(model._meta.concrete_fields)
        if tracked == ALL_BASIC_FIELDS:
            self.fields = concrete
        else:
            by_name = {f.name: f for f in concrete}
            unknown = [name for name in tracked if name not in by_name]
            if unknown:
                raise ValueError(
                    f"{model.__qualname__}.CQRS_TRACKED_FIELDS names unknown fields: {unknown}"
                )
            self.fields = [by_name[name] for name in tracked]
        signals.post_init.connect(self._on_init, sender=model, weak=False)

    def _on_init(self, sender: Any, instance: Any, **kwargs: Any) -> None:
        self.snapshot(instance)

    def snapshot(self, instance: Any, names: Iterable[str] | None = None) -> None:
        """Take the current values as the loaded ones: all, or the fields ``names`` (field or
        attribute names, as ``refresh_from_db(fields=...)`` takes them)."""
        values = instance.__dict__
        previous = getattr(instance, _SNAPSHOT, None)
        if names is None or previous is None:
            setattr(instance, _SNAPSHOT, {f.attname: values.get(f.attname) for f in self.fields})
            return
        wanted = set(names)
        for field in self.fields:
            if field.name in wanted or field.attname in wanted:
                previous[field.attname] = values.get(field.attname)

    def changed(self, instance: Any) -> dict[str, Any]:
        """The ``previous_data`` of a save: see the module docstring for its keys."""
        values = instance.__dict__
        if instance._state.adding:
            return {f.attname: None for f in self.fields if values.get(f.attname) is not None}
        before = getattr(instance, _SNAPSHOT, None) or {}
        result = {}
        for field in self.fields:
            old = before.get(field.attname)
            if old != values.get(field.attname):
                result[field.name] = to_wire(old)
        return result

    def loaded(self, instance: Any) -> dict[str, Any]:
        """Every tracked field's value as loaded, by attribute name (a bulk update's
        ``previous_data``)."""
        before = getattr(instance, _SNAPSHOT, None) or {}
        return {f.attname: to_wire(before.get(f.attname)) for f in self.fields}
