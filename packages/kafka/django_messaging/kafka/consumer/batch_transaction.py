"""One database transaction per polled batch, a savepoint per message.

``ATOMIC`` promises that a message's database writes are applied together or not at all, and
that its offset is stored only after they are committed. A transaction (and its fsync) per
message pays for that on every message; here the consumer opens one transaction per batch and
database, and each message gets a savepoint only when it runs its first query: a handler that
does not touch the database costs a flag, one that fails rolls back to its own savepoint and
keeps its neighbours' writes. The offsets of the batch are stored after the commit.

On PostgreSQL, round trips are saved: a message's savepoint is sent in the same round trip as
its first statement (bound on the client, as Django's psycopg cursors do by default), together
with the release of the previous message's savepoint; a handler's first ``atomic()`` block
opens its savepoint in the same round trip as the message's, and the handler's own savepoints
are not released one by one (the release of the message's savepoint releases them; rolling
back to it undoes them). A handler that runs one statement per message costs one round trip.

PostgreSQL keeps the ids of at most 64 subtransactions of a transaction in shared memory; past
that, every other session's snapshots look them up on disk while the transaction is open. So a
transaction on PostgreSQL is *full* once its savepoints (the messages' and those their handlers
opened with ``atomic()``) leave no room for another message like the largest so far: the
consumer commits it and handles the rest of the batch in a new one.

When the transaction itself breaks (the database went away, a savepoint cannot be rolled back,
the commit fails) the batch is rolled back whole and the consumer handles its messages again
one by one, each in its own transaction.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from django_messaging.kafka.utils.message import Message

_names = itertools.count(1)

#: subtransactions PostgreSQL caches per backend (``PGPROC_MAX_CACHED_SUBXIDS``)
POSTGRES_SUBTRANSACTIONS = 64


def _binds_on_client(driver: Any) -> bool:
    """Is ``driver`` a psycopg cursor that binds parameters on the client and runs what it is
    given as it is (not a server-side cursor, which wraps the query in ``DECLARE``)?"""
    if not hasattr(driver, "mogrify"):
        return False
    from psycopg import ServerCursor

    return not isinstance(driver, ServerCursor)


class BatchAborted(Exception):
    """The batch's transaction cannot go on; the batch is to be rolled back and redone."""


class BatchTransaction:
    """The open transaction of one batch on the database ``using``."""

    def __init__(self, using: str | None) -> None:
        self.using = using
        self.connection = connections[using or DEFAULT_DB_ALIAS]
        self._atomic: Any = None
        self._pending = False  # the running message has not queried yet
        self._savepoint: str | None = None  # the running message's savepoint
        self._released: str | None = None  # a handled message's savepoint, released lazily
        self._postgres = self.connection.vendor == "postgresql"
        self._cursor: Any = None  # of the driver, for the savepoints
        #: most savepoints this transaction may hold
        self.limit = POSTGRES_SUBTRANSACTIONS if self._postgres else sys.maxsize
        self._opened = 0  # savepoints of messages, less Django's count when the batch began
        self._mark = 0  # savepoints before the running message's first query
        self._largest = 0  # most savepoints one message opened
        #: what others keep per transaction (the inbox's ids recorded ahead)
        self.state: dict[str, Any] = {}
        #: called before the commit, in the transaction
        self.before_commit: list[Callable[[], None]] = []

    def begin(self) -> None:
        atomic = transaction.atomic(using=self.using)
        atomic.__enter__()
        self._atomic = atomic
        # Django numbers savepoints per connection, never resetting the count
        self._opened = -self.connection.savepoint_state
        self.connection.execute_wrappers.append(self._before_query)

    def call(
        self,
        handler: Callable[[Message], Any],
        msg: Message,
        rolled_back: Callable[[], None] | None = None,
    ) -> bool:
        """Run ``handler(msg)``; on an exception its writes are rolled back (then
        ``rolled_back()`` is called) and it is re-raised (:class:`BatchAborted` when they
        cannot be). ``True``: the transaction is full, commit it before the next message."""
        connection = self.connection
        hooks = len(connection.run_on_commit)
        self._pending = True
        try:
            handler(msg)
        except BaseException as exc:
            self._pending = False
            self._rollback_message(hooks, exc)
            if rolled_back is not None:
                rolled_back()
            raise
        if self._pending:  # no query: no savepoint
            self._pending = False
            if connection.needs_rollback:
                self._rollback_message(hooks, None)
                if rolled_back is not None:
                    rolled_back()
            return False
        if connection.needs_rollback or self._aborted_on_server():
            # the handler caught a database error: its writes are dropped, as
            # transaction.atomic() would on exit
            self._rollback_message(hooks, None)
            if rolled_back is not None:
                rolled_back()
        else:
            self._released, self._savepoint = self._savepoint, None
        used = self._opened + connection.savepoint_state
        if used - self._mark > self._largest:
            self._largest = used - self._mark
        return used + self._largest > self.limit

    def execute(self, sql: str, params: Any = None) -> list[Any]:
        """Run ``sql`` in the transaction, outside any message's savepoint; its rows."""
        cursor = self._own_cursor()
        if not self._postgres and params is not None:
            sql = sql.replace("%s", "?")  # the driver's own placeholders (sqlite3)
        with self.connection.wrap_database_errors:  # Django's exception classes
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def commit(self) -> None:
        if self.connection.needs_rollback:
            # atomic() would roll back silently, and the batch's offsets would be stored
            raise BatchAborted("the batch's transaction is marked for rollback")
        for hook in self.before_commit:
            hook()
        atomic, self._atomic = self._atomic, None
        self._detach()
        atomic.__exit__(None, None, None)

    def rollback(self) -> None:
        atomic, self._atomic = self._atomic, None
        self._detach()
        if atomic is None:
            return
        error = BatchAborted("batch rolled back")
        try:
            atomic.__exit__(BatchAborted, error, None)
        except Exception:  # the connection is gone: nothing to roll back on it
            pass

    # --- internals ------------------------------------------------------------------------

    def _detach(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            try:
                cursor.close()
            except Exception:  # a broken connection: nothing to release
                pass
        wrappers = self.connection.execute_wrappers
        if self._before_query in wrappers:
            wrappers.remove(self._before_query)

    def _before_query(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        if self._pending:
            self._pending = False
            if self._postgres and params is None and sql.startswith("SAVEPOINT "):
                # the handler's atomic() block: its savepoint goes with the message's
                self._open_savepoint(sql)
                return None
            if self._postgres and not many:
                driver = context["cursor"].cursor
                if _binds_on_client(driver):
                    # the message's first statement goes in the round trip of its savepoint
                    self._open_savepoint(driver.mogrify(sql, params), counted=False, on=driver)
                    while driver.nextset():  # its results are the statement's
                        pass
                    return driver
            self._open_savepoint()
        elif (
            self._postgres
            and params is None
            and self._savepoint is not None
            and sql.startswith("RELEASE SAVEPOINT ")
        ):
            # A savepoint of the handler's own: left open, it is released with the message's
            # savepoint (or undone with it), one round trip less.
            return None
        return execute(sql, params, many, context)

    def _open_savepoint(
        self, then: str | None = None, counted: bool = True, on: Any = None
    ) -> None:
        """Open the message's savepoint, ``then`` in the same round trip (a savepoint Django
        counted already, unless not ``counted``), on the driver cursor ``on``."""
        self._mark = self._opened + self.connection.savepoint_state - (then is not None and counted)
        self._opened += 1
        ops = self.connection.ops
        name = f"kafka_msg_{next(_names)}"
        statements = [ops.savepoint_create_sql(name)]
        if self._released is not None:
            statements.insert(0, ops.savepoint_commit_sql(self._released))
            self._released = None
        if then is not None:
            statements.append(then)
        cursor = on or self._own_cursor()
        if on is not None:
            self._savepoint = name  # rolled back to if ``then`` fails
        with self.connection.wrap_database_errors:  # Django's exception classes
            if self._postgres:
                cursor.execute("; ".join(statements))  # one round trip
            else:
                for statement in statements:
                    cursor.execute(statement)
        self._savepoint = name

    def _own_cursor(self) -> Any:
        cursor = self._cursor
        if cursor is None:
            cursor = self._cursor = self.connection.connection.cursor()
        return cursor

    def _aborted_on_server(self) -> bool:
        if not self._postgres:
            return False
        from psycopg.pq import TransactionStatus

        return bool(self.connection.connection.info.transaction_status == TransactionStatus.INERROR)

    def _rollback_message(self, hooks: int, exc: BaseException | None) -> None:
        connection = self.connection
        del connection.run_on_commit[hooks:]
        name, self._savepoint = self._savepoint, None
        if name is None:
            # the message did not query: nothing to undo, but save() marks the transaction
            # for rollback on any error, before its first query too
            connection.needs_rollback = False
            return
        try:
            with connection.wrap_database_errors:
                self._own_cursor().execute(connection.ops.savepoint_rollback_sql(name))
        except Exception as error:
            raise BatchAborted(f"cannot roll back one message's writes: {error}") from exc
        connection.needs_rollback = False
        self._released = name


class BatchTransactions:
    """The batch transactions of one batch, one per database, opened at their first message."""

    def __init__(self) -> None:
        self._open: dict[str | None, BatchTransaction] = {}
        #: (topic, partition) of every message handled inside one of them
        self.partitions: set[tuple[str, int]] = set()

    def get(self, using: str | None) -> BatchTransaction:
        found = self._open.get(using)
        if found is None:
            found = BatchTransaction(using)
            try:
                found.begin()
            except Exception as exc:
                raise BatchAborted(f"cannot begin the batch's transaction: {exc}") from exc
            self._open[using] = found
        return found

    def commit(self) -> None:
        while self._open:
            _, tx = self._open.popitem()
            tx.commit()

    def rollback(self) -> None:
        while self._open:
            _, tx = self._open.popitem()
            tx.rollback()
