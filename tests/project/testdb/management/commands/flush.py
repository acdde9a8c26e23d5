"""``flush`` as the test runs call it after each transactional test, in a fraction of the time.

Django's flush truncates every table of every app (about 70 here, over 0.3 s on PostgreSQL)
and then recreates the content types and permissions. This one empties only the tables that
have rows, and leaves the content types and permissions in place: post_migrate, which writes
them, runs again only when their row counts changed since it last ran. The same database
afterwards. Any other call (``manage.py flush``, ``reset_sequences``) is Django's own.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections

#: Written by post_migrate from the models alone: the same rows after every flush.
KEPT = ("django_content_type", "auth_permission")

#: database alias -> the KEPT tables' row counts after its last post_migrate
_written: dict[str, list[int]] = {}


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        if options["interactive"] or options.get("reset_sequences", True):
            return super().handle(**options)
        connection = connections[options["database"]]
        tables = connection.introspection.django_table_names(
            only_existing=True, include_views=False
        )
        with_rows = tables_with_rows(connection, [t for t in tables if t not in KEPT])
        if with_rows:
            # Cascade: on PostgreSQL a truncated table's empty referrers must go in the same
            # statement; emptying them changes nothing.
            statements = connection.ops.sql_flush(
                self.style, with_rows, reset_sequences=False, allow_cascade=True
            )
            connection.ops.execute_sql_flush(statements)
        if options.get("inhibit_post_migrate", False):
            return None
        alias = options["database"]
        if _written.get(alias) != row_counts(connection, tables):
            emit_post_migrate_signal(options["verbosity"], False, alias)
            _written[alias] = row_counts(connection, tables)
        return None


def row_counts(connection: Any, tables: list[str]) -> list[int]:
    quote = connection.ops.quote_name
    present = [t for t in KEPT if t in tables]
    if not present:
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(t)})" for t in present))
        return list(cursor.fetchone())


def tables_with_rows(connection: Any, tables: list[str]) -> list[str]:
    if not tables:
        return []
    quote = connection.ops.quote_name
    query = " UNION ALL ".join(
        f"SELECT %s FROM (SELECT 1 AS one) AS x WHERE EXISTS (SELECT 1 FROM {quote(t)})"
        for t in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(query, tables)
        return [row[0] for row in cursor.fetchall()]
