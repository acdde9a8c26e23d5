"""Rows of a master model as ``instance_data`` dicts, fast: the engine of dump, diff and sync."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import models

from django_messaging.cqrs.constants import ALL_BASIC_FIELDS
from django_messaging.cqrs.management.utils import batch_qs, batch_values
from django_messaging.cqrs.serialization import to_wire


def master_rows(
    model: Any, queryset: models.QuerySet, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Batches of ``to_cqrs_dict()``-equal dicts, in pk order, paginated by key.

    Models without ``CQRS_SERIALIZER`` are read with ``values_list`` (no model instances); the
    others through ``relate_cqrs_serialization`` once per batch, serialized without re-fetching.
    """
    if model.CQRS_SERIALIZER:
        for batch in batch_qs(model.relate_cqrs_serialization(queryset), batch_size):
            yield [obj.to_cqrs_dict(sync=True) for obj in batch]
        return
    chosen = None if model.CQRS_FIELDS == ALL_BASIC_FIELDS else set(model.CQRS_FIELDS)
    fields = [
        f
        for f in model._meta.concrete_fields
        if chosen is None or f.name in chosen or f.name in ("cqrs_revision", "cqrs_updated")
    ]
    pk_name = model._meta.pk.attname
    fields.sort(key=lambda f: f.attname != pk_name)  # pk first, for the keyset
    names = [f.name for f in fields]
    attnames = tuple(["pk", *(f.attname for f in fields[1:])])
    simple = (str, int, float, bool, type(None))
    for batch in batch_values(queryset, attnames, batch_size):
        out = []
        for values in batch:
            row = {}
            for name, value in zip(names, values, strict=True):
                row[name] = value if isinstance(value, simple) else to_wire(value)
            out.append(row)
        yield out
