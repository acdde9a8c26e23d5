"""A master row and its pending-message row written by one statement (PostgreSQL).

In the default mode (``CQRS_PUBLISH_CONFIRMS = "outbox"``) a ``save()`` outside a transaction
would otherwise take three more round trips than a plain save: ``BEGIN``, the pending-message
``INSERT`` and ``COMMIT``. On PostgreSQL a create instead runs as one statement,

    WITH row AS (INSERT INTO <model> ... RETURNING ...),
         message AS (INSERT INTO messaging_cqrs_pendingmessage ... SELECT ... FROM row
                     RETURNING id)
    SELECT <returned columns>, message.id FROM row, message

which commits both rows together. The message row is written with an empty ``body``: the
message itself is built from the saved instance after the statement and published as usual.
Only when that process dies before the broker confirms it does the relay find such a row; it
then sends the row's current state (:func:`rebuild`), which a replica applies like any save.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections
from django.db.models import NOT_PROVIDED, sql
from django.utils import timezone

from django_messaging.cqrs.constants import SignalType

logger = logging.getLogger(__name__)

#: Key of the instance's ``__dict__`` entries used while a staged insert is under way.
REQUESTED = "_cqrs_insert_stage"
STAGED_ID = "_cqrs_staged_id"


def applies(instance: Any, using: str, options: dict[str, Any]) -> bool:
    """True when this ``save(**options)`` is certain to be one INSERT the statement can carry."""
    meta = instance._meta
    if (
        connections[using].vendor != "postgresql"
        or meta.parents
        or options.get("force_update")
        or options.get("update_fields") is not None
        or not instance._state.adding
    ):
        return False
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
    selected = ", ".join(f"row.{ops.quote_name(f.column)}" for f in returned)
    message_columns = ", ".join(
        ops.quote_name(c)
        for c in (
            "created",
            "cqrs_id",
            "signal_type",
            "instance_pk",
            "queue",
            "body",
            "attempts",
            "last_error",
        )
    )
    statement = (
        f"WITH row AS ({insert_sql}), message AS ("
        f"INSERT INTO {ops.quote_name(PendingMessage._meta.db_table)} ({message_columns}) "
        f"SELECT %s, %s, %s, (row.{ops.quote_name(pk_column)})::text, '', '', 0, '' "
        f"FROM row "
        f"RETURNING {ops.quote_name('id')}) "
        f"SELECT {selected + ', ' if selected else ''}message.{ops.quote_name('id')} "
        f"FROM row, message"
    )
    params = (
        *insert_params,
        ops.adapt_datetimefield_value(timezone.now()),
        model.CQRS_ID,
        SignalType.SAVE.value,
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    instance.__dict__[STAGED_ID] = row[-1]
    if not returned:
        return []
    values = [row[:-1]]
    converters = compiler.get_converters([f.get_col(model._meta.db_table) for f in returned])
    if converters:
        values = [tuple(v) for v in compiler.apply_converters(values, converters)]
    return values


def rebuild(cqrs_id: str, instance_pk: str, using: str) -> Any:
    """The SAVE message for a staged row whose process died: the row's current state, or None."""
    from django_messaging.cqrs.registries import MasterRegistry
    from django_messaging.cqrs.signals import build_save_payload

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
    return build_save_payload(instance, using, sync=False, queue=None, previous=None)
