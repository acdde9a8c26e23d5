"""MySQL and MariaDB: the portable statements, with an upsert that keeps an existing row.

A MariaDB read view can show a transaction of an application without an earlier one that
committed before it (it is built by walking the open transactions while they commit), so
readers of a log fence their reads with its head (:attr:`~.base.Dialect.snapshots_are_atomic`).
"""

from __future__ import annotations

from django_messaging.eventstore.dialects.base import Dialect


class MySQLDialect(Dialect):
    vendor = "mysql"

    def create_sequence_row(self, sequence: str) -> str:
        return super().create_sequence_row(sequence) + " ON DUPLICATE KEY UPDATE last_id = last_id"
