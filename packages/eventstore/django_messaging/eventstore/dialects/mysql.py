"""MySQL and MariaDB: the portable statements, with an upsert that keeps an existing row."""

from __future__ import annotations

from django_messaging.eventstore.dialects.base import Dialect


class MySQLDialect(Dialect):
    vendor = "mysql"

    def create_sequence_row(self, sequence: str) -> str:
        return super().create_sequence_row(sequence) + " ON DUPLICATE KEY UPDATE last_id = last_id"
