"""SQLite: ``RETURNING`` from 3.35, ``INSERT OR IGNORE``, turns for shared in-memory databases."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from django_messaging.eventstore.dialects.base import Dialect

# Shared-cache in-memory SQLite databases report "table is locked" instead of waiting, so
# writers (and readers) of one such database take turns through this lock.
_memory_locks: dict[str, threading.RLock] = {}
_memory_locks_guard = threading.Lock()


def _memory_lock(connection: BaseDatabaseWrapper) -> threading.RLock:
    name = str(connection.settings_dict.get("NAME"))
    with _memory_locks_guard:
        return _memory_locks.setdefault(name, threading.RLock())


class SQLiteDialect(Dialect):
    vendor = "sqlite"
    bump_returns_last_id = sqlite3.sqlite_version_info >= (3, 35)

    def serialised(self, connection: BaseDatabaseWrapper) -> AbstractContextManager[Any]:
        if connection.is_in_memory_db():  # type: ignore[attr-defined]
            return _memory_lock(connection)
        return nullcontext()

    def bump_sequence(self, sequence: str) -> str:
        bump = super().bump_sequence(sequence)
        return bump + " RETURNING last_id" if self.bump_returns_last_id else bump

    def create_sequence_row(self, sequence: str) -> str:
        return f"INSERT OR IGNORE INTO {sequence} (application_name, last_id) VALUES (%s, 0)"
