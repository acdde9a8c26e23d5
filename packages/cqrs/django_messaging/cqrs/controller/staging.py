"""A master row and its pending-message row written by one statement (PostgreSQL).

In the default mode (``CQRS_PUBLISH_CONFIRMS = "outbox"``) a ``save()`` outside a transaction
would otherwise take three more round trips than a plain save: ``BEGIN``, the pending-message
``INSERT`` and ``COMMIT`` (and an update one more, to read back the incremented revision). On
PostgreSQL the save's own statement carries the message row instead:

    WITH saved AS (INSERT INTO <model> ... RETURNING ...   -- or UPDATE ... RETURNING
                   ),
         message AS (INSERT INTO messaging_cqrs_pendingmessage ... SELECT ... FROM saved
                      RETURNING id)
    SELECT <returned columns>, message.id FROM saved, message

which commits both rows together. The message row is written with an empty ``body``: the
message itself is built from the saved instance after the statement and published as usual.
Only when that process dies before the broker confirms it does the relay find such a row; it
then sends the row's current state (:func:`rebuild`), which a replica applies like any save.

Inside a transaction, an instance's first save in it takes the same statement instead of an
``INSERT`` of its own for the message row; a later save of the instance in that transaction
writes the message into the row.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from typing import Any

import django
from django.db import DatabaseError, connections, models
from django.db.models import NOT_PROVIDED, sql
from django.utils import timezone

from django_messaging.core import tracing
from django_messaging.cqrs.conf import master_setting
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.controller import pending_row
from django_messaging.cqrs.payloads import save_payload
from django_messaging.cqrs.registries import MasterRegistry

logger = logging.getLogger(__name__)

#: Key of the instance's ``__dict__`` entries used while a staged insert is under way.
REQUESTED = "_cqrs_insert_stage"
#: The value of ``REQUESTED`` for an update that only reads its revision back (no message row:
#: inside a transaction the message is stored just before the commit, see .precommit).
REVISION_ONLY = "revision"
STAGED_ID = "_cqrs_staged_id"
#: (model, vendor, returned columns) -> the statement's text after the model's INSERT.
_AFTER_INSERT: dict[tuple, str] = {}
_MESSAGE_COLUMNS = pending_row.column_list(lambda c: f'"{c}"')


#: The private ``Model`` methods the mixin overrides to carry the message row, with the
#: parameters it relies on (Django 4.2 to 5.2). No public hook lets a save change its statement.
HOOKS = {
    "_do_update": (
        "self",
        "base_qs",
        "using",
        "pk_val",
        "values",
        "update_fields",
        "forced_update",
    ),
    "_do_insert": ("self", "manager", "using", "fields", "returning_fields", "raw"),
}
_hooks_known: list[bool] = []


def hooks_known() -> bool:
    """True when Django's save methods have the signatures the mixin's overrides expect.

    On another Django, saves take the path without the single statement (one transaction of
    their own): slower, never wrong. Logged once per process.
    """
    if not _hooks_known:
        found = {
            name: tuple(inspect.signature(getattr(models.Model, name, None) or _absent).parameters)
            for name in HOOKS
        }
        _hooks_known.append(found == HOOKS)
        if found != HOOKS:
            logger.warning(
                "Django %s: Model save methods changed (%s); CQRS saves write their message in "
                "a transaction of their own instead of in the save's statement",
                django.get_version(),
                found,
            )
    return _hooks_known[0]


def _absent() -> None:
    pass


def hook_arguments(name: str, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a call to the hook ``name``, by parameter name, however Django passed
    them."""
    call = dict(zip(HOOKS[name][1:], args, strict=False))
    call.update(kwargs)
    return call


def applies(instance: Any, using: str, options: dict[str, Any]) -> bool:
    """True when this ``save(**options)`` is an UPDATE or INSERT the statement can carry."""
    meta = instance._meta
    if (
        connections[using].vendor != "postgresql"
        or not hooks_known()
        or meta.parents
        or options.get("update_fields") is not None
    ):
        return False
    if not instance._state.adding:
        return not meta.select_on_save and not options.get("force_insert")
    # Django inserts without trying an UPDATE first when asked to, when there is no primary key
    # yet, or when the key comes from a default (see Model._save_table).
    pk = meta.pk
    return bool(
        options.get("force_insert")
        or instance.pk is None
        or (pk.default is not NOT_PROVIDED and pk.default)
        or getattr(pk, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
    )


def insert(
    instance: Any, manager: Any, using: str, fields: list, returning_fields: list, raw: bool
) -> list:
    """``Model._do_insert`` that also writes the pending-message row; its id goes on the instance."""
    from django_messaging.cqrs.models import PendingMessage

    model = manager.model
    connection = connections[using]
    ops = connection.ops
    query = sql.InsertQuery(model)
    query.insert_values(fields, [instance], raw=raw)
    compiler = query.get_compiler(using=using)
    pk_column = model._meta.pk.column
    # The statement needs the new primary key even when Django would not ask for it back.
    returned = list(returning_fields or [])
    needs_pk = all(f.column != pk_column for f in returned)
    compiler.returning_fields = [*returned, model._meta.pk] if needs_pk else returned
    ((insert_sql, insert_params),) = compiler.as_sql()
    key = (model, connection.vendor, tuple(f.column for f in returned))
    after = _AFTER_INSERT.get(key)
    if after is None:
        pk = ops.quote_name(pk_column)
        selected = "".join(f"saved.{ops.quote_name(f.column)}, " for f in returned)
        after = _AFTER_INSERT[key] = (
            f"), message AS (INSERT INTO {ops.quote_name(PendingMessage._meta.db_table)} "
            f"({_MESSAGE_COLUMNS}) SELECT %s, %s, %s, (saved.{pk})::text, '', '', 0, '', %s "
            f'FROM saved RETURNING "id") SELECT {selected}message."id" FROM saved, message'
        )
    statement = f"WITH saved AS ({insert_sql}{after}"
    params = (*insert_params, *_message_params(model, ops))
    row = _execute(connection, statement, params)
    instance.__dict__[STAGED_ID] = row[-1]
    if not returned:
        return []
    values = [row[:-1]]
    converters = compiler.get_converters([f.get_col(model._meta.db_table) for f in returned])
    if converters:
        values = [tuple(v) for v in compiler.apply_converters(values, converters)]
    return values


def update(
    instance: Any, base_qs: Any, using: str, pk_val: Any, values: list, *, message: bool = True
) -> bool:
    """``Model._do_update`` that also writes the pending-message row (``message=False``: only
    reads the incremented revision back). False: no row matched."""
    from django_messaging.cqrs.models import PendingMessage

    model = base_qs.model
    connection = connections[using]
    ops = connection.ops
    query = base_qs.filter(pk=pk_val).query.chain(sql.UpdateQuery)
    query.add_update_fields(values)
    query.annotations = {}
    update_sql, update_params = query.get_compiler(using).as_sql()
    pk_column = ops.quote_name(model._meta.pk.column)
    revision = ops.quote_name(model._meta.get_field("cqrs_revision").column)
    if not message:
        row = _execute(connection, f"{update_sql} RETURNING {revision}", tuple(update_params))
        if row is None:
            return False
        instance.__dict__.pop(REQUESTED, None)
        instance.cqrs_revision = row[0]
        return True
    statement = (
        f"WITH saved AS ({update_sql} RETURNING {pk_column}, {revision}), message AS ("
        f"INSERT INTO {ops.quote_name(PendingMessage._meta.db_table)} ({_MESSAGE_COLUMNS}) "
        f"SELECT %s, %s, %s, (saved.{pk_column})::text, '', '', 0, '', %s FROM saved "
        f"RETURNING {ops.quote_name('id')}) "
        f"SELECT saved.{revision}, message.{ops.quote_name('id')} FROM saved, message"
    )
    params = (*update_params, *_message_params(model, ops))
    row = _execute(connection, statement, params)
    if row is None:
        return False  # Django goes on to INSERT, which can still carry the message row
    instance.__dict__.pop(REQUESTED, None)
    instance.cqrs_revision = row[0]  # the incremented value, without reading the row again
    instance.__dict__[STAGED_ID] = row[1]
    return True


@functools.cache
def _preparing() -> tuple[type, tuple[type[BaseException], ...]]:
    """psycopg 3's cursor that prepares what it executes (Django turns psycopg's automatic
    preparation off), and the errors of a prepared statement that a plain one does not have: a
    connection pooler in transaction mode that does not keep prepared statements, or a table
    altered since. Built at the first use: a project on another database never imports psycopg."""
    import psycopg

    class PreparingCursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("prepare", True)
            return super().execute(query, params, **kwargs)

    errors = psycopg.errors
    return PreparingCursor, (
        errors.InvalidSqlStatementName,
        errors.DuplicatePreparedStatement,
        errors.FeatureNotSupported,
    )


#: Set on the first error only a prepared statement gets: plain statements from then on.
_prepare_failed = [False]
_NEVER = 2**62


def _execute(connection: Any, statement: str, params: tuple) -> Any:
    """Run ``statement`` and return its row, prepared where psycopg 3 and the settings allow.

    The statement is the same text for every save of a model, and it is planned anew each time
    it is sent unprepared: preparing it takes about half of its time off. It goes through
    Django's cursor wrapper either way (errors, execute wrappers).
    """
    # Logged queries (DEBUG, tests) take the plain path: Django logs them with their values.
    # So do statements inside a transaction, which a failed prepared one would abort.
    if (
        connection.vendor == "postgresql"
        and not _prepare_failed[0]
        and not connection.queries_logged
        and not connection.in_atomic_block
        and master_setting("PREPARED_STATEMENTS")
    ):
        connection.ensure_connection()
        psycopg = sys.modules.get("psycopg")  # psycopg2 has no prepared statements to ask for
        if psycopg is not None and isinstance(connection.connection, psycopg.Connection):
            preparing_cursor, prepared_errors = _preparing()
            connection.validate_thread_sharing()
            if connection.connection.prepare_threshold is None:
                # Django's default, which turns explicit preparation off too. A threshold no
                # query reaches still keeps psycopg from preparing any other query by itself.
                connection.connection.prepare_threshold = _NEVER
            cursor = connection.make_cursor(preparing_cursor(connection.connection))
            try:
                with cursor:
                    cursor.execute(statement, params)
                    return cursor.fetchone()
            except DatabaseError as exc:
                if not isinstance(exc.__cause__, prepared_errors):
                    raise
                # Outside a transaction the failed statement changed nothing: send it plain.
                _prepare_failed[0] = True
                logger.warning(
                    "prepared statements fail on database %r (%s); the CQRS outbox goes on "
                    "without them (set CQRS_PREPARED_STATEMENTS = False behind a pooler that "
                    "drops them)",
                    connection.alias,
                    exc,
                )
    with connection.cursor() as cursor:
        # Not the prepared statement's text: with server-side binding, psycopg would run the
        # statement it prepared under the same text, which a pooler may have dropped since.
        cursor.execute(f"{statement} /* unprepared */", params)
        return cursor.fetchone()


def _message_params(model: Any, ops: Any) -> tuple:
    trace = json.dumps(tracing.inject(), separators=(",", ":")) if tracing.enabled else None
    return (
        ops.adapt_datetimefield_value(timezone.now()),
        model.CQRS_ID,
        SignalType.SAVE.value,
        trace or None,
    )


def rebuild(cqrs_id: str, instance_pk: str, using: str) -> Any:
    """The SAVE message for a staged row whose process died: the row's current state, or None
    when the row is gone. A failing serializer raises."""
    model = MasterRegistry.get_model_by_cqrs_id(cqrs_id)
    if model is None:
        logger.error("cqrs_id=%s pk=%s: no master model has this CQRS_ID", cqrs_id, instance_pk)
        return None
    pk = model._meta.pk.to_python(instance_pk)
    instance = model._default_manager.using(using).filter(pk=pk).first()
    if instance is None:
        # Deleted since: its delete has a message of its own.
        logger.info("cqrs_id=%s pk=%s: gone before its save was re-sent", cqrs_id, instance_pk)
        return None
    if not instance.is_sync_instance():
        return None
    return save_payload(instance, using, sync=False, queue=None, previous=None, strict=True)
