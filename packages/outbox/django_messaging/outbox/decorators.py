"""``@publish([Config(...)])``: write an outbox row for every ``save()`` of a model, in the same
database transaction as the save.

    @publish([Config(destination="/topic/orders", version="v1", fields=["total"])])
    class Order(models.Model): ...

The body is ``{"id": <pk>, <field>: <value>, ...}`` (all concrete fields, or ``fields``), or what
the model method named by ``serializer`` returns. Nothing is written inside ``suppress()``.

How the rows are written. Inside ``transaction.atomic()`` the save runs as it would without
the decorator; each save's rows (built at once) are registered as a commit hook of the
transaction (:class:`_PendingRows`, through core's ``precommit``), so Django drops them with a
savepoint that rolls back, and those still registered are written in one INSERT just before the
commit. In autocommit, a save that is one ``INSERT`` on PostgreSQL (a new instance
of a model without a custom ``save()``, multi-table parents, ``pre_save``/``post_save``
receivers, database-computed fields, ``serializer`` or ``key`` configs) carries them in its own
statement::

    WITH saved AS (INSERT INTO <model> ... RETURNING <pk>),
         m0 AS (INSERT INTO messaging_outbox_published ... VALUES (..., <body with saved.pk>, ...))
    SELECT * FROM saved

which commits both together with no ``BEGIN``/``COMMIT``. Every other save runs in
``transaction.atomic(savepoint=False)`` with one more ``INSERT`` for the rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, router, transaction
from django.db.models import NOT_PROVIDED, signals, sql
from django.utils import timezone
from django.utils.encoding import is_protected_type

from django_messaging.core import precommit, tracing
from django_messaging.core.suppression import is_suppressed
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.correlation import get_correlation_id, with_correlation_id

M = TypeVar("M", bound=type[models.Model])

#: Set on a decorated class so that a subclass's own ``@publish`` does not wrap twice.
CONFIGS_ATTRIBUTE = "_outbox_publish_configs"


class Config(NamedTuple):
    destination: str
    fields: list[str] | None = None
    serializer: str | None = None
    version: str | None = None
    #: The name of the transport in ``MESSAGING["OUTBOX"]["TRANSPORTS"]`` that sends it.
    transport: str = "default"
    #: The message key: the name of a model attribute (called when it is a method) or a
    #: callable taking the instance. Messages with the same key reach the broker in commit
    #: order; a Kafka transport sends it as the record key.
    key: str | Callable[[Any], Any] | None = None

    @property
    def full_destination(self) -> str:
        return f"{self.destination}.{self.version}" if self.version else self.destination


def _field_body(instance: models.Model, fields: Sequence[str] | None) -> dict[str, Any]:
    """``{"id": pk, name: value, ...}`` over every concrete field (parents' included), as
    Django's serializers write values: numbers, dates and ``None`` as they are, foreign keys as
    their pk, anything else through ``value_to_string``. Many-to-many fields only when listed
    in ``fields`` (they need a query)."""
    opts = instance._meta
    body: dict[str, Any] = {"id": instance.pk}
    wanted = set(fields) if fields is not None else None
    for field in opts.concrete_fields:
        if field.primary_key or getattr(field, "parent_link", False):
            continue
        name = field.name
        if wanted is not None and name not in wanted and field.attname not in wanted:
            continue
        value = field.value_from_object(instance)
        body[name] = value if is_protected_type(value) else field.value_to_string(instance)
    for field in opts.many_to_many:
        if wanted is not None and field.name in wanted:
            body[field.name] = [related.pk for related in getattr(instance, field.name).all()]
    return body


def build_key(instance: models.Model, config: Config) -> str | None:
    if config.key is None:
        return None
    if callable(config.key):
        value = config.key(instance)
    else:
        value = getattr(instance, config.key)
        if callable(value):
            value = value()
    return None if value is None else str(value)


class NewRow(NamedTuple):
    """One outbox row to insert."""

    destination: str
    version: str | None
    body: Any
    transport: str = "default"
    key: str | None = None
    payload: bytes | None = None
    headers: dict[str, Any] | None = None


def build_body(instance: models.Model, config: Config) -> Any:
    if config.serializer:
        return getattr(instance, config.serializer)()
    return _field_body(instance, config.fields)


_INSERT_SQL: dict[tuple[str, int], str] = {}
_NULL_AT_FIRST = frozenset({"claimed_by", "claimed_until", "sent_at"})
_FIELDS: list[Any] = []
_CONSTANTS: dict[str, Any] = {
    "retry": 0,
    "status": StatusChoice.SCHEDULE,
    "last_error": "",
}
#: database alias -> the prepared values of ``_CONSTANTS``.
_CONSTANT_PARAMS: dict[str, dict[str, Any]] = {}


def _outbox_fields() -> list[Any]:
    """``Published``'s columns the rows are written with; those that start out NULL (claim,
    send time) are left to the database."""
    if not _FIELDS:
        from django_messaging.outbox.models import Published

        _FIELDS.extend(
            f
            for f in Published._meta.concrete_fields
            if not (f.null and f.attname in _NULL_AT_FIRST)
        )
    return _FIELDS


def _outbox_params(connection: Any, messages: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """The values of one ``Published`` row per :class:`NewRow` (or ``(destination, version,
    body)``), prepared by the fields themselves: the row ``Published.objects.bulk_create``
    writes (every column, its defaults), without building model instances."""
    from django_messaging.outbox.models import one_more_day

    fields = _outbox_fields()
    constant = _CONSTANT_PARAMS.get(connection.alias)
    if constant is None:  # the columns every row starts with the same value in
        constant = _CONSTANT_PARAMS[connection.alias] = {
            f.attname: f.get_db_prep_save(value, connection)
            for f in fields
            for name, value in _CONSTANTS.items()
            if f.attname == name
        }
    rows = []
    previous = None
    current = get_correlation_id()
    native = connection.vendor == "postgresql"
    for message in messages:
        new = message if isinstance(message, NewRow) else NewRow(*message)
        now = timezone.now()
        if previous is not None and now <= previous:  # the relay sends configs in this order
            now = previous + dt.timedelta(microseconds=1)
        previous = now
        values = {
            "id": uuid.uuid4(),
            "version": new.version,
            "destination": new.destination,
            "body": new.body,
            "headers": with_correlation_id(new.headers, current),
            "transport": new.transport,
            "key": new.key,
            "payload": new.payload,
            "added": now,
            "expires_at": one_more_day(now),
            "available_at": now,
        }
        if tracing.enabled:  # the trace of the transaction that writes the row, for the relay
            values["headers"] = {**values["headers"], **tracing.inject()}
        if native:
            rows.append(
                [
                    constant[f.attname]
                    if f.attname in constant
                    else f.get_db_prep_save(values[f.attname], connection)
                    if f.attname in _PREPARED_BY_FIELD
                    else values[f.attname]
                    for f in fields
                ]
            )
            continue
        rows.append(
            [
                constant[f.attname]
                if f.attname in constant and f.attname not in values
                else f.get_db_prep_save(
                    values[f.attname] if f.attname in values else f.get_default(), connection
                )
                for f in fields
            ]
        )
    return rows


#: On PostgreSQL (psycopg adapts UUIDs, strings and datetimes as Django's fields would pass
#: them) only these columns need their field to prepare the value.
_PREPARED_BY_FIELD = frozenset({"body", "headers", "payload"})


def insert_outbox_rows(using: str, messages: Sequence[tuple[Any, ...]]) -> None:
    """INSERT one ``Published`` row per :class:`NewRow` (or ``(destination, version, body)``)
    in one statement.

    The SQL is built once per database and row count. Like ``bulk_create``, it sends no
    ``pre_save``/``post_save`` signals for the outbox rows.
    """
    connection = connections[using]
    _insert_prepared(connection, _outbox_params(connection, messages))


#: Most rows one INSERT writes (SQLite allows 32766 parameters, older builds 999).
_ROWS_PER_INSERT = 64


def _insert_prepared(connection: Any, rows: Sequence[list[Any]]) -> None:
    """INSERT rows of prepared values (see :func:`_outbox_params`), as few statements as the
    database allows."""
    from django_messaging.outbox.models import Published

    fields = _outbox_fields()
    step = max(1, min(_ROWS_PER_INSERT, connection.ops.bulk_batch_size(fields, rows)))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            key = (connection.alias, len(chunk))
            sql_text = _INSERT_SQL.get(key)
            if sql_text is None:
                quote = connection.ops.quote_name
                columns = ", ".join(quote(str(f.column)) for f in fields)
                row = "(" + ", ".join(["%s"] * len(fields)) + ")"
                sql_text = _INSERT_SQL[key] = (
                    f"INSERT INTO {quote(Published._meta.db_table)} ({columns}) "
                    f"VALUES {', '.join([row] * len(chunk))}"
                )
            cursor.execute(sql_text, [value for values in chunk for value in values])


# --- inside a transaction: the rows are written just before it commits ----------------------


class _PendingRows(precommit.BeforeCommit):
    """The outbox rows of one save inside ``transaction.atomic()``, registered with core's
    :mod:`~django_messaging.core.precommit`, so that Django's own bookkeeping drops them when a
    savepoint around the save rolls back (or the transaction does), and the rows still
    registered are written in one INSERT just before the commit.

    ``rows``: on PostgreSQL each row as one JSON object (see :func:`_json_rows`), elsewhere
    the prepared values of :func:`_outbox_params`."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    @classmethod
    def write(cls, connection: Any, hooks: list[Any], *, final: bool) -> None:
        """INSERT the rows of every save whose hook is still registered, in save order."""
        rows = [row for hook in hooks for row in hook.rows]
        if not rows:
            return
        if connection.vendor == "postgresql":
            _insert_json(connection, rows, final=final)
        else:
            _insert_prepared(connection, rows)


#: Rows of one statement written from JSON (PostgreSQL).
_JSON_ROWS_PER_INSERT = 1000
#: database alias -> the statement writing the rows of one JSON array (PostgreSQL).
_JSON_INSERT_SQL: dict[str, str] = {}
#: The columns every row starts with the same value in, as JSON.
_JSON_CONSTANTS: list[str] = []


def _pending_rows(connection: Any, messages: Sequence[NewRow]) -> list[Any]:
    if connection.vendor == "postgresql":
        return _json_rows(messages)
    return _outbox_params(connection, messages)


def _json_rows(messages: Sequence[NewRow]) -> list[str]:
    """One JSON object per row, by column name, for ``jsonb_populate_recordset``: the values
    :func:`_outbox_params` gives, the body and headers encoded as their fields encode them."""
    from django_messaging.outbox.models import one_more_day

    if not _JSON_CONSTANTS:
        columns = {f.attname: f.column for f in _outbox_fields()}
        _JSON_CONSTANTS.append(
            ", ".join(
                f"{json.dumps(columns[name])}: {json.dumps(_json_value(value))}"
                for name, value in _CONSTANTS.items()
            )
        )
    constants = _JSON_CONSTANTS[0]
    texts = []
    previous = None
    current = get_correlation_id()
    for new in messages:
        now = timezone.now()
        if previous is not None and now <= previous:  # the relay sends configs in this order
            now = previous + dt.timedelta(microseconds=1)
        previous = now
        headers = with_correlation_id(new.headers, current)
        if tracing.enabled:  # the trace of the transaction that writes the row, for the relay
            headers = {**headers, **tracing.inject()}
        added = now.isoformat()
        row = {
            "id": str(uuid.uuid4()),
            "version": new.version,
            "destination": new.destination,
            "body": new.body,
            "headers": headers,
            "added": added,
            "expires_at": one_more_day(now).isoformat(),
            "available_at": added,
            "transport": new.transport,
            "key": new.key,
        }
        text = _ENCODE(row)
        texts.append(f"{text[:-1]}, {constants}}}")
    return texts


def _json_value(value: Any) -> Any:
    return int(value) if isinstance(value, int) else value


#: The JSON of ``Published.body`` and ``headers`` (both fields use this encoder).
_ENCODE = DjangoJSONEncoder(ensure_ascii=True).encode


def _insert_json(connection: Any, rows: Sequence[str], *, final: bool = False) -> None:
    """One statement of constant text per 1000 rows, its one parameter a JSON array of them:
    PostgreSQL parses and plans little, the driver converts one value. ``final``: nothing is
    written after it, so where the driver binds on the client the last statement carries the
    ``COMMIT`` (one round trip; psycopg then sees the transaction ended)."""
    sql_text = _JSON_INSERT_SQL.get(connection.alias)
    if sql_text is None:
        from django_messaging.outbox.models import Published

        quote = connection.ops.quote_name
        table = quote(Published._meta.db_table)
        columns = ", ".join(quote(str(f.column)) for f in _outbox_fields())
        sql_text = _JSON_INSERT_SQL[connection.alias] = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
        )
    with connection.cursor() as cursor:
        last = (len(rows) - 1) // _JSON_ROWS_PER_INSERT * _JSON_ROWS_PER_INSERT
        commits = final and precommit.can_carry_commit(cursor)
        for start in range(0, len(rows), _JSON_ROWS_PER_INSERT):
            statement = f"{sql_text}; COMMIT" if commits and start == last else sql_text
            cursor.execute(
                statement, ["[" + ", ".join(rows[start : start + _JSON_ROWS_PER_INSERT]) + "]"]
            )


# --- the save's own statement carries the rows (PostgreSQL) -------------------------------

#: Key of the instance's ``__dict__`` entry asking its next INSERT to carry the rows.
_CARRY = "_outbox_carry"
#: ``Model._do_insert``'s parameters (Django 4.2 to 5.2), which the override relies on.
_DO_INSERT_PARAMETERS = ("self", "manager", "using", "fields", "returning_fields", "raw")
_hook_known: list[bool] = []
#: (model, database) -> whether its saves can carry the rows; see ``_carries``.
_MODEL_CARRIES: dict[tuple[type, str], frozenset[str] | None] = {}
#: (database, number of rows, pk comes back from the INSERT) -> the statement after the INSERT.
_CARRY_SQL: dict[tuple[str, int, bool], tuple[str, str]] = {}
#: Django's own ``Model._do_insert`` (private, so not in the type stubs).
_DJANGO_DO_INSERT: Any = vars(models.Model)["_do_insert"]


def _do_insert_known() -> bool:
    if not _hook_known:
        found = tuple(inspect.signature(_DJANGO_DO_INSERT).parameters)
        _hook_known.append(found == _DO_INSERT_PARAMETERS)
    return _hook_known[0]


def _model_carries(model: type[models.Model], using: str) -> frozenset[str] | None:
    """What about the model (not the instance) lets its INSERT carry the rows: None when
    nothing can, else the names of its many-to-many fields (a config listing one cannot)."""
    key = (model, using)
    if key not in _MODEL_CARRIES:
        meta = model._meta
        carries = (
            connections[using].vendor == "postgresql"
            and _do_insert_known()
            and getattr(model, "_do_insert", None) is _do_insert
            and model.save in _ONE_STATEMENT_SAVES
            and not meta.parents
            and len(getattr(meta, "pk_fields", [meta.pk])) == 1
            and all(f is meta.pk for f in meta.db_returning_fields)
        )
        _MODEL_CARRIES[key] = (
            frozenset(n for f in meta.many_to_many for n in (f.name, f.attname))
            if carries
            else None
        )
    return _MODEL_CARRIES[key]


#: The decorator's save wrappers whose wrapped save is Django's own ``Model.save``.
_ONE_STATEMENT_SAVES: set[Any] = set()


def _carries(
    instance: models.Model, using: str, configs: Sequence[Config], args: tuple, kwargs: dict
) -> bool:
    """True when this ``save()`` is exactly one INSERT (and nothing around it in the same call
    that the rows' transaction used to cover): no UPDATE is tried first, no receivers, and
    every body can be built before the INSERT (its ``id`` aside)."""
    m2m = _model_carries(type(instance), using)
    if m2m is None or any(
        # A key may be read from the primary key, which only the INSERT gives.
        c.serializer or c.key is not None or (m2m and set(c.fields or ()) & m2m)
        for c in configs
    ):
        return False
    model = type(instance)
    if args or kwargs.get("update_fields") is not None or kwargs.get("force_update"):
        return False
    if not instance._state.adding:
        return False
    pk = model._meta.pk
    if not (
        kwargs.get("force_insert")
        or instance.pk is None
        or pk.has_default()
        or getattr(pk, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
    ):
        return False
    return not (signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model))


def _do_insert(
    self: models.Model,
    manager: Any,
    using: str,
    fields: list[Any],
    returning_fields: list[Any],
    raw: bool,
) -> Any:
    """``Model._do_insert`` that writes the outbox rows in the same statement when the save
    asked for it (see the module docstring)."""
    configs: list[Config] | None = self.__dict__.pop(_CARRY, None)
    if configs is None:
        return _DJANGO_DO_INSERT(self, manager, using, fields, returning_fields, raw)
    from django_messaging.outbox.models import Published

    model = manager.model
    meta = model._meta
    connection = connections[using]
    query = sql.InsertQuery(model)
    query.insert_values(fields, [self], raw=raw)
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = returning_fields
    ((insert_sql, insert_params),) = compiler.as_sql()  # fields' pre_save has run now
    pk_from_insert = bool(returning_fields)
    key = (using, len(configs), pk_from_insert)
    parts = _CARRY_SQL.get(key)
    if parts is None:
        quote = connection.ops.quote_name
        outbox_fields = _outbox_fields()
        columns = ", ".join(quote(str(f.column)) for f in outbox_fields)
        # The body's "id" is the new primary key, set from the row the INSERT returned.
        body = "CAST(%s AS jsonb)"
        if pk_from_insert:
            body = f"jsonb_set({body}, '{{id}}', to_jsonb(saved.{{pk}}))"
        values = ", ".join(body if f.attname == "body" else "%s" for f in outbox_fields)
        source = f"SELECT {values} FROM saved" if pk_from_insert else f"VALUES ({values})"
        inserts = ", ".join(
            f"m{i} AS (INSERT INTO {quote(Published._meta.db_table)} ({columns}) {source})"
            for i in range(len(configs))
        )
        parts = _CARRY_SQL[key] = (
            ("WITH saved AS (", f"), {inserts} SELECT * FROM saved")
            if pk_from_insert
            else (f"WITH {inserts} ", "")
        )
    before, after = parts
    if pk_from_insert:
        after = after.replace("{pk}", connection.ops.quote_name(meta.pk.column))
    messages = [
        NewRow(c.full_destination, c.version, _field_body(self, c.fields), c.transport)
        for c in configs
    ]
    params = [*insert_params] if pk_from_insert else []
    for row in _outbox_params(connection, messages):
        params.extend(row)
    if not pk_from_insert:
        params.extend(insert_params)
    with connection.cursor() as cursor:
        cursor.execute(f"{before}{insert_sql}{after}", params)
        if not returning_fields:
            return []
        rows = [cursor.fetchone()]
    converters = compiler.get_converters([f.get_col(meta.db_table) for f in returning_fields])
    if converters:
        rows = [tuple(r) for r in compiler.apply_converters(rows, converters)]
    return rows


def _new_rows(instance: models.Model, configs: Sequence[Config]) -> list[NewRow]:
    return [
        NewRow(
            c.full_destination,
            c.version,
            build_body(instance, c),
            c.transport,
            build_key(instance, c),
        )
        for c in configs
    ]


def _check(cls: type[models.Model], configs: Sequence[Config]) -> None:
    for config in configs:
        if not isinstance(config, Config):
            raise ImproperlyConfigured(f"@publish on {cls.__name__}: {config!r} is not a Config.")
        if not config.destination:
            raise ImproperlyConfigured(f"@publish on {cls.__name__}: a Config needs a destination.")
        if not isinstance(config.transport, str) or not config.transport:
            raise ImproperlyConfigured(
                f"@publish on {cls.__name__}: transport must be the name of a transport."
            )
        if config.key is not None and not (callable(config.key) or isinstance(config.key, str)):
            raise ImproperlyConfigured(
                f"@publish on {cls.__name__}: key must be an attribute name or a callable."
            )
        if config.serializer and not callable(getattr(cls, config.serializer, None)):
            raise ImproperlyConfigured(
                f"@publish on {cls.__name__}: serializer {config.serializer!r} is not a method of "
                f"the model. Define {cls.__name__}.{config.serializer}(self) returning the body."
            )


def publish(configs: Sequence[Config]) -> Callable[[M], M]:
    """Class decorator: every ``save()`` also writes one ``Published`` row per config."""
    configs = list(configs)

    def decorate(cls: M) -> M:
        _check(cls, configs)
        original_save = cls.save

        @functools.wraps(original_save)
        def save(self: models.Model, *args: Any, **kwargs: Any) -> None:
            active = [
                c
                for c in configs
                if not is_suppressed(c.full_destination) and not is_suppressed(c.destination)
            ]
            if not active:
                original_save(self, *args, **kwargs)
                return

            using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
            if precommit.deferring(using):
                connection = connections[using]
                try:
                    original_save(self, *args, **kwargs)
                    rows = _pending_rows(connection, _new_rows(self, active))
                except BaseException:
                    # As atomic(savepoint=False) would: the transaction cannot commit a model
                    # row without its outbox rows.
                    transaction.set_rollback(True, using=using)
                    raise
                precommit.defer(_PendingRows(rows), using)
                return
            if _carries(self, using, active, args, kwargs):
                self.__dict__[_CARRY] = active
                try:
                    original_save(self, *args, **kwargs)
                finally:
                    missed = self.__dict__.pop(_CARRY, None)
                if missed is None:
                    return
                # Not reached for a save that is one INSERT; written as before if it was not.
                insert_outbox_rows(using, _new_rows(self, missed))
                return
            # No savepoint: if the outbox INSERT fails, the caller's transaction cannot commit
            # the model row without it.
            with transaction.atomic(using=using, savepoint=False):
                original_save(self, *args, **kwargs)
                insert_outbox_rows(using, _new_rows(self, active))

        if original_save is models.Model.save:
            _ONE_STATEMENT_SAVES.add(save)
        if getattr(cls, "_do_insert", None) is _DJANGO_DO_INSERT:
            setattr(cls, "_do_insert", _do_insert)  # noqa: B010  (private, not in the stubs)
        cls.save = save  # type: ignore[method-assign]
        setattr(cls, CONFIGS_ATTRIBUTE, configs)
        return cls

    return decorate
