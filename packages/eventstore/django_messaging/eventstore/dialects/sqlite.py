"""SQLite: ``RETURNING`` from 3.35, ``INSERT OR IGNORE``, the WAL journal for file databases,
turns for shared in-memory databases."""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from django_messaging.eventstore.dialects.base import Dialect

logger = logging.getLogger(__name__)

# Shared-cache in-memory SQLite databases report "table is locked" instead of waiting, so
# writers (and readers) of one such database take turns through this lock.
_memory_locks: dict[str, threading.RLock] = {}
_memory_locks_guard = threading.Lock()

#: Per Django connection: the raw connection already prepared, and what guards its statements.
_prepared: weakref.WeakKeyDictionary[
    BaseDatabaseWrapper, tuple[Any, AbstractContextManager[Any]]
] = weakref.WeakKeyDictionary()


def _memory_lock(connection: BaseDatabaseWrapper) -> threading.RLock:
    name = str(connection.settings_dict.get("NAME"))
    with _memory_locks_guard:
        return _memory_locks.setdefault(name, threading.RLock())


def _use_wal(connection: BaseDatabaseWrapper) -> None:
    """Put a file database in WAL mode, as ``eventsourcing.sqlite`` does.

    A commit in the default rollback journal syncs the journal and the database file several
    times; in WAL mode it appends to one file and syncs it once, and readers no longer block
    the writer. The mode is stored in the database file, so this changes it once.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            mode = str(cursor.fetchone()[0]).lower()
    except DatabaseError as exc:
        # A read-only file, or another connection holding a lock: the events are still
        # stored, with the journal the file has. The next connection tries again.
        logger.warning("SQLite database %s keeps its journal: %s", connection.alias, exc)
        return
    if mode == "wal":
        logger.info("SQLite database %s now uses the WAL journal", connection.alias)
    else:
        logger.warning(
            "SQLite database %s keeps the %s journal: WAL is not available", connection.alias, mode
        )


class SQLiteDialect(Dialect):
    vendor = "sqlite"
    snapshots_are_atomic = True
    bump_returns_last_id = sqlite3.sqlite_version_info >= (3, 35)

    def serialised(self, connection: BaseDatabaseWrapper) -> AbstractContextManager[Any]:
        connection.ensure_connection()
        prepared = _prepared.get(connection)
        if prepared is not None and prepared[0] is connection.connection:
            return prepared[1]
        if connection.is_in_memory_db():  # type: ignore[attr-defined]
            guard: AbstractContextManager[Any] = _memory_lock(connection)
        elif connection.in_atomic_block:
            # The journal mode cannot change inside a transaction: the next call tries again.
            return nullcontext()
        else:
            _use_wal(connection)
            guard = nullcontext()
        _prepared[connection] = (connection.connection, guard)
        return guard

    def bump_sequence(self, sequence: str) -> str:
        bump = super().bump_sequence(sequence)
        return bump + " RETURNING last_id" if self.bump_returns_last_id else bump

    def create_sequence_row(self, sequence: str) -> str:
        return f"INSERT OR IGNORE INTO {sequence} (application_name, last_id) VALUES (%s, 0)"
