"""Idempotent topics: a redelivered message is skipped.

An idempotent topic's handler runs in a transaction (the batch's, with a savepoint per
message) whose first statement records the message's id in :class:`.ProcessedMessage`: one
``INSERT`` that ignores a conflict with the unique ``(consumer, message_id)``. No row inserted
means the consumer group handled that message before: the handler is not called and the
offset advances. The row commits and rolls back with the handler's own writes, so a failing
handler leaves no record, and a process killed between the database commit and the offset
commit skips the message it is handed again after the restart.

The id is the first of the ``INBOX_ID_HEADERS`` present (the outbox relay sets
``dop-msg-id``, the same on every resend), else ``topic/partition/offset``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.constants import OnConflict
from django.utils import timezone

from django_messaging.kafka.conf import settings
from django_messaging.kafka.utils.message import Message

logger = logging.getLogger(__name__)

_sql: dict[str, str] = {}  # the INSERT per database vendor


class _PerThread(threading.local):
    """Django's connections are per thread, so are the cursor and timestamp kept for them."""

    def __init__(self) -> None:
        self.now: tuple[Any, Any, Any] = (None, None, None)  # (second, timestamp, connection)
        #: (alias, queries logged): (driver connection, Django cursor)
        self.cursors: dict[tuple[str, bool], tuple[Any, Any]] = {}


_local = _PerThread()


def message_id(msg: Message, headers: tuple[str, ...] | list[str] | None = None) -> str:
    """The id of ``msg``: its first id header present, else ``topic/partition/offset``."""
    names = settings.INBOX_ID_HEADERS if headers is None else headers
    found = msg.headers()
    if found:
        for name in names:
            for key, value in found:
                if key == name and value:
                    return value.decode() if isinstance(value, bytes) else str(value)
    return f"{msg.topic()}/{msg.partition()}/{msg.offset()}"


def record(consumer: str, msg_id: str, using: str | None = None) -> bool:
    """Insert ``(consumer, msg_id)``; ``False`` when it was recorded already. Run it inside
    the transaction of the handler."""
    connection = connections[using or DEFAULT_DB_ALIAS]
    sql = _sql.get(connection.vendor)
    if sql is None:
        sql = _sql[connection.vendor] = _insert_sql(connection)
    # the time to the second is enough for the retention: adapted once a second
    local = _local
    second = int(time.monotonic())
    now = local.now
    if now[0] != second or now[2] is not connection:
        adapted = connection.ops.adapt_datetimefield_value(timezone.now())
        now = local.now = (second, adapted, connection)
    # one cursor per database connection, reused (Django's cursor() costs a new one each time)
    key = (connection.alias, connection.queries_logged)
    cached = local.cursors.get(key)
    if cached is None or cached[0] is not connection.connection:
        cached = local.cursors[key] = (connection.connection, connection.cursor())
    cursor = cached[1]
    cursor.execute(sql, (consumer, msg_id[:255], now[1]))
    return bool(cursor.rowcount)


def _insert_sql(connection: Any) -> str:
    from django_messaging.kafka.models import ProcessedMessage

    ops = connection.ops
    meta = ProcessedMessage._meta
    fields: list[Any] = [meta.get_field(n) for n in ("consumer", "message_id", "processed_at")]
    columns = ", ".join(ops.quote_name(f.column) for f in fields)
    suffix = ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)
    return (
        f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {ops.quote_name(meta.db_table)} "
        f"({columns}) VALUES (%s, %s, %s) {suffix}"
    ).strip()


def idempotent(
    call: Callable[[Message], Any], consumer: str, using: str | None
) -> Callable[[Message], Any]:
    """``call`` that records each message first and skips the ones recorded already."""
    headers = tuple(settings.INBOX_ID_HEADERS)

    def once(msg: Message) -> Any:
        msg_id = message_id(msg, headers)
        if record(consumer, msg_id, using):
            return call(msg)
        logger.info(
            "%s: %s [%s] @%s handled before (%s): skipped",
            consumer,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            msg_id,
        )
        return None

    return once
