"""Remember the values of ``CQRS_TRACKED_FIELDS`` as loaded, to send them as ``previous_data``."""

from __future__ import annotations

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
        concrete = [f for f in model._meta.concrete_fields]
        if tracked == ALL_BASIC_FIELDS:
            self.fields = [f for f in concrete if f.name not in ("cqrs_revision", "cqrs_updated")]
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

    def snapshot(self, instance: Any) -> None:
        values = instance.__dict__
        setattr(instance, _SNAPSHOT, {f.attname: values.get(f.attname) for f in self.fields})

    def changed(self, instance: Any) -> dict[str, Any]:
        """``{field name: previous value}`` of the tracked fields that differ from the snapshot."""
        before = getattr(instance, _SNAPSHOT, None) or {}
        if instance._state.adding:
            return {f.name: None for f in self.fields}
        result = {}
        for field in self.fields:
            old = before.get(field.attname)
            if old != instance.__dict__.get(field.attname):
                result[field.name] = to_wire(old)
        return result
