"""Idempotent topics: a redelivered message is skipped.

An idempotent topic's handler runs in a transaction (the batch's, with a savepoint per
message) after its message's id was recorded in :class:`.ProcessedMessage`: an ``INSERT`` that
ignores a conflict with the unique ``(consumer, message_id)``. No row inserted means the
consumer group handled that message before: the handler is not called and the offset
advances. The row commits and rolls back with the handler's own writes, so a failing handler
leaves no record, and a process killed between the database commit and the offset commit
skips the message it is handed again after the restart.

In a batch's transaction (PostgreSQL, SQLite) :class:`Ahead` records the ids of the next
messages in one statement; a message handled on its own records its id with :func:`record`.

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
from django_messaging.kafka.consumer.batch_transaction import BatchAborted
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
    now = _now(connection)
    # one cursor per database connection, reused (Django's cursor() costs a new one each time)
    key = (connection.alias, connection.queries_logged)
    cached = _local.cursors.get(key)
    if cached is None or cached[0] is not connection.connection:
        cached = _local.cursors[key] = (connection.connection, connection.cursor())
    cursor = cached[1]
    cursor.execute(sql, (consumer, msg_id[:255], now))
    return bool(cursor.rowcount)


def _now(connection: Any) -> Any:
    """The time of a record, for ``connection``: to the second is enough for the retention,
    so it is adapted once a second."""
    local = _local
    second = int(time.monotonic())
    now = local.now
    if now[0] != second or now[2] is not connection:
        adapted = connection.ops.adapt_datetimefield_value(timezone.now())
        now = local.now = (second, adapted, connection)
    return now[1]


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


#: most ids recorded ahead in one statement (a PostgreSQL batch transaction holds 64 messages)
AHEAD = 64

_MINE, _USED, _SEEN = 1, 2, 3  # recorded ahead, unused / by a handled message / before


class Ahead:
    """The ids of idempotent messages of one batch transaction, recorded ahead.

    At the first message whose id it does not know, one ``INSERT`` records the ids of the
    messages coming next in the batch (``RETURNING`` those it inserted). A message whose id
    was inserted runs its handler (its own id already recorded); one whose id was there before
    (or was used by an earlier message of the transaction) is skipped. A message that fails
    gives its id back for a later message with the same id; ids that no handled message used
    (a message held for a retry, the transaction full before it) are deleted before the commit,
    in the same transaction. So the records commit exactly with the handlers' writes, as the
    per-message ``INSERT`` does, for one statement per ``AHEAD`` messages.
    """

    def __init__(self, tx: Any, consumer: str) -> None:
        self.tx = tx
        self.consumer = consumer
        self._ids: dict[str, int] = {}
        tx.before_commit.append(self._forget_unused)

    @staticmethod
    def supported(connection: Any) -> bool:
        return connection.vendor == "postgresql" or (
            connection.vendor == "sqlite" and connection.features.can_return_rows_from_bulk_insert
        )

    @classmethod
    def of(cls, tx: Any, consumer: str) -> Ahead:
        found = tx.state.get("inbox")
        if found is None:
            found = tx.state["inbox"] = cls(tx, consumer)
        return found  # type: ignore[no-any-return]

    def take(self, msg_id: str, coming: Callable[[], list[str]]) -> bool:
        """May the message with ``msg_id`` run (``False``: it was handled before)?"""
        msg_id = msg_id[:255]
        state = self._ids.get(msg_id)
        if state is None:
            ids = {msg_id}
            ids.update(i[:255] for i in coming())
            try:
                self._record({i for i in ids if i not in self._ids})
            except Exception as exc:  # the transaction cannot go on: redo the batch
                raise BatchAborted(f"cannot record the ids of idempotent messages: {exc}") from exc
            state = self._ids[msg_id]
        if state == _MINE:
            self._ids[msg_id] = _USED
            return True
        return False

    def give_back(self, msg_id: str) -> None:
        """The message with ``msg_id`` failed: its record is for a later one, or deleted."""
        self._ids[msg_id[:255]] = _MINE

    def _record(self, ids: set[str]) -> None:
        from django_messaging.kafka.models import ProcessedMessage

        connection = self.tx.connection
        ordered = sorted(ids)  # one lock order for consumers recording the same ids
        ops = connection.ops
        meta = ProcessedMessage._meta
        fields: list[Any] = [meta.get_field(n) for n in ("consumer", "message_id", "processed_at")]
        columns = ", ".join(ops.quote_name(f.column) for f in fields)
        suffix = ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)
        sql = (
            f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {ops.quote_name(meta.db_table)} "
            f"({columns}) VALUES {', '.join(['(%s, %s, %s)'] * len(ordered))} {suffix} "
            f"RETURNING {ops.quote_name(fields[1].column)}"
        )
        now = _now(connection)
        params: list[Any] = []
        for msg_id in ordered:
            params += [self.consumer, msg_id, now]
        inserted = {row[0] for row in self.tx.execute(sql, params)}
        for msg_id in ordered:
            self._ids[msg_id] = _MINE if msg_id in inserted else _SEEN

    def _forget_unused(self) -> None:
        unused = [i for i, state in self._ids.items() if state == _MINE]
        if not unused:
            return
        from django_messaging.kafka.models import ProcessedMessage

        ops = self.tx.connection.ops
        meta = ProcessedMessage._meta
        self.tx.execute(
            f"DELETE FROM {ops.quote_name(meta.db_table)} "
            f"WHERE {ops.quote_name(getattr(meta.get_field('consumer'), 'column', ''))} = %s "
            f"AND {ops.quote_name(getattr(meta.get_field('message_id'), 'column', ''))} IN "
            f"({', '.join(['%s'] * len(unused))})",
            [self.consumer, *unused],
        )


def skipped(consumer: str, msg: Message, msg_id: str) -> None:
    logger.info(
        "%s: %s [%s] @%s handled before (%s): skipped",
        consumer,
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg_id,
    )


def idempotent(
    call: Callable[[Message], Any], consumer: str, using: str | None
) -> Callable[[Message], Any]:
    """``call`` that records each message first and skips the ones recorded already."""
    headers = tuple(settings.INBOX_ID_HEADERS)

    def once(msg: Message) -> Any:
        msg_id = message_id(msg, headers)
        if record(consumer, msg_id, using):
            return call(msg)
        skipped(consumer, msg, msg_id)
        return None

    return once
