"""PostgreSQL: ``RETURNING``, ``ON CONFLICT``, ``NOTIFY``/``LISTEN``, one-statement appends."""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections

from django_messaging.eventstore.dialects.base import Dialect, EventRow


class PostgreSQLDialect(Dialect):
    vendor = "postgresql"
    snapshots_are_atomic = True
    bump_returns_last_id = True
    appends_in_one_statement = True
    listens = True

    def bump_sequence(self, sequence: str) -> str:
        # The NOTIFY is sent when (and only if) the transaction commits.
        return super().bump_sequence(sequence) + " RETURNING last_id, pg_notify(%s, '')"

    def bump_params(self, count: int, application_name: str, channel: str) -> list[Any]:
        return [count, application_name, channel]

    def create_sequence_row(self, sequence: str) -> str:
        return super().create_sequence_row(sequence) + " ON CONFLICT DO NOTHING"

    def append_in_one_statement(
        self,
        cursor: Any,
        *,
        events_table: str,
        bump: str,
        bump_params: list[Any],
        application_name: str,
        rows: Sequence[EventRow],
    ) -> list[int] | None:
        """Reserve the ids, notify and insert in one statement: outside a caller's transaction
        that is one round trip without BEGIN/COMMIT. ``None`` when the application has no
        sequence row yet."""
        count = len(rows)
        values = ",".join(["(%s,%s,%s,%s,%s::bytea)"] * count)
        sql = (
            f"WITH seq AS ({bump}) "
            f"INSERT INTO {events_table} (application_name, notification_id, "
            "originator_id, originator_version, topic, state) "
            "SELECT %s, seq.last_id - %s + v.n, v.oid, v.version, v.topic, v.state "
            f"FROM seq, (VALUES {values}) AS v(n, oid, version, topic, state) "
            "RETURNING notification_id"
        )
        params: list[Any] = [*bump_params, application_name, count]
        for number, row in enumerate(rows, start=1):
            params += [number, *row]
        cursor.execute(sql, params)
        returned = cursor.fetchall()
        if not returned:
            return None
        first = min(row[0] for row in returned)
        return list(range(first, first + count))

    def listen(
        self, using: str, channel: str, notified: threading.Event, stopped: Callable[[], bool]
    ) -> None:
        wrapper = connections[using]
        try:
            wrapper.ensure_connection()
            raw: Any = wrapper.connection
            with wrapper.cursor() as cursor:
                cursor.execute(f'LISTEN "{channel}"')
            notifies = getattr(raw, "notifies", None)
            while not stopped():
                if callable(notifies):  # psycopg 3
                    for _ in raw.notifies(timeout=0.1, stop_after=1):
                        notified.set()
                elif select.select([raw], [], [], 0.1)[0]:  # psycopg2
                    raw.poll()
                    if raw.notifies:
                        raw.notifies.clear()
                        notified.set()
        finally:
            wrapper.close()
