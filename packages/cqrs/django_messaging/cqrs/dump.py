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


_PLAIN = {
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
    "FloatField",
    "BooleanField",
    "CharField",
    "TextField",
    "SlugField",
    "EmailField",
    "URLField",
    "JSONField",
    "ForeignKey",
    "OneToOneField",
}
_AS_TEXT = {"DecimalField", "DateField", "UUIDField", "TimeField", "DurationField"}


def _pg_expression(field: Any, column: str) -> str | None:
    kind = field.get_internal_type()
    if kind in ("ForeignKey", "OneToOneField"):
        target = field.target_field.get_internal_type()
        if target not in _PLAIN and target not in _AS_TEXT:
            return None
        return column if target in _PLAIN else f"{column}::text"
    if kind in _PLAIN:
        return column
    if kind in _AS_TEXT:
        return f"{column}::text"
    if kind == "BinaryField":
        return f"translate(encode({column}, 'base64'), E'\\n', '')"
    if kind == "DateTimeField":
        from django.conf import settings

        if not settings.USE_TZ:
            return None
        # The UTC wall time and offset, as str() writes it (PostgreSQL drops trailing zeros of
        # the fraction; every reader parses both).
        return f"(({column} AT TIME ZONE 'UTC')::text || '+00:00')"
    return None


def master_json_lines(model: Any, batch_size: int, using: str = "default") -> Any:
    """Batches of JSON lines built by PostgreSQL itself, or None when that is not possible.

    Used by ``cqrs_bulk_dump`` for models without ``CQRS_SERIALIZER`` on PostgreSQL: the rows
    never become Python objects. The values are those of :func:`master_rows`. On psycopg 3 the
    batches come from one ``COPY``, which holds the connection until the iterator is exhausted
    or closed: close it when stopping early.
    """
    from django.db import connections

    connection = connections[using]
    if model.CQRS_SERIALIZER or connection.vendor != "postgresql":
        return None
    chosen = None if model.CQRS_FIELDS == ALL_BASIC_FIELDS else set(model.CQRS_FIELDS)
    quote = connection.ops.quote_name
    pairs = []
    names = []
    for field in model._meta.concrete_fields:
        if (
            chosen is not None
            and field.name not in chosen
            and field.name not in ("cqrs_revision", "cqrs_updated")
        ):
            continue
        expression = _pg_expression(field, quote(field.column))
        if expression is None:
            return None
        names.append(field.name)
        pairs.append(f"{expression} AS {quote(field.name)}")
    if not pairs:
        return None
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    # row_to_json writes compact JSON keyed by the column aliases (the field names).
    sql = (
        f"SELECT _k, row_to_json(_r)::text FROM (SELECT {pk} AS _k, {', '.join(pairs)} "
        f"FROM {table} WHERE %s::text IS NULL OR {pk} > %s ORDER BY {pk} LIMIT %s) AS _s, "
        f"LATERAL (SELECT {', '.join(quote(f) for f in names)}) AS _r"
    )

    select = (
        f"SELECT row_to_json(_r)::text FROM (SELECT {', '.join(pairs)} FROM {table} "
        f"ORDER BY {pk}) AS _r"
    )

    def copied() -> Iterator[list[str]]:
        # One COPY streams every row from one snapshot, in pk order. COPY's text format doubles
        # each backslash (the JSON has no raw control characters): undo that per whole line.
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY ({select}) TO STDOUT") as copy,
        ):
            rest = b""
            for block in copy:
                data = rest + bytes(block)
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                rest = data[cut + 1 :]
                text = data[:cut].decode("utf-8")
                yield text.replace("\\\\", "\\").split("\n")
            if rest:
                yield [rest.decode("utf-8").replace("\\\\", "\\")]

    database = getattr(connection, "Database", None)
    if getattr(database, "__name__", "") == "psycopg":  # psycopg 3 streams COPY
        return copied()

    def batches() -> Iterator[list[str]]:
        last = None
        while True:
            with connection.cursor() as cursor:
                cursor.execute(sql, [last, last, batch_size])
                rows = cursor.fetchall()
            if not rows:
                return
            yield [text for _pk, text in rows]
            last = rows[-1][0]
            if len(rows) < batch_size:
                return

    return batches()
