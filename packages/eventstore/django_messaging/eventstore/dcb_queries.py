"""SQL for DCB queries: which positions of an application's sequence match a query.

Each query item becomes one ``SELECT position`` that starts from the most selective index:
the tag table for items with tags (one self-join per further tag, a join to the events for
the types), the ``(application, type, position)`` index for items with types only. Items are
combined with ``UNION``. Driving the plan from the tags keeps reads and append conditions
fast however stale the planner's statistics are (a freshly created or emptied table, before
the database has analysed it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from eventsourcing.dcb.api import DCBQuery, DCBQueryItem

from django_messaging.eventstore.dcb_tables import DCB_EVENTS_TABLE, DCB_TAGS_TABLE

Statement = tuple[str, list[Any]]


class DCBQueries:
    """Statements for one application on one connection."""

    def __init__(self, connection: BaseDatabaseWrapper, application_name: str) -> None:
        quote = connection.ops.quote_name
        self.events = quote(DCB_EVENTS_TABLE)
        self.tags = quote(DCB_TAGS_TABLE)
        self.type = quote("type")
        self.application_name = application_name
        # PostgreSQL stores the tags as jsonb, and takes the JSON text only with a cast.
        self.json = "%s::jsonb" if connection.vendor == "postgresql" else "%s"

    def matching_positions(self, query: DCBQuery | None, after: int, upto: int | None) -> Statement:
        """``SELECT position`` of every event after ``after`` (up to ``upto``) that matches
        at least one item of ``query``; every event when it has no items, or an empty item."""
        if matches_all(query):
            return self._by_types(None, after, upto)
        assert query is not None
        branches = [self._item(item, after, upto) for item in query.items]
        sql = " UNION ".join(sql for sql, _ in branches)
        return sql, [param for _, params in branches for param in params]

    def _item(self, item: DCBQueryItem, after: int, upto: int | None) -> Statement:
        tags = list(dict.fromkeys(item.tags))
        if not tags:
            return self._by_types(item.types, after, upto)
        joins: list[str] = []
        params: list[Any] = []
        for number, tag in enumerate(tags[1:], start=1):
            joins.append(
                f"JOIN {self.tags} t{number} ON t{number}.application_name = t0.application_name"
                f" AND t{number}.position = t0.position AND t{number}.tag = %s"
            )
            params.append(tag)
        if item.types:
            joins.append(
                f"JOIN {self.events} e ON e.application_name = t0.application_name"
                f" AND e.position = t0.position AND e.{self.type} IN ({_marks(item.types)})"
            )
            params += item.types
        sql = (
            f"SELECT t0.position FROM {self.tags} t0 {' '.join(joins)}"
            " WHERE t0.application_name = %s AND t0.tag = %s AND t0.position > %s"
        )
        params += [self.application_name, tags[0], after]
        if upto is not None:
            sql += " AND t0.position <= %s"
            params.append(upto)
        return sql, params

    def _by_types(self, types: Sequence[str] | None, after: int, upto: int | None) -> Statement:
        sql = f"SELECT position FROM {self.events} WHERE application_name = %s AND position > %s"
        params: list[Any] = [self.application_name, after]
        if upto is not None:
            sql += " AND position <= %s"
            params.append(upto)
        if types:
            sql += f" AND {self.type} IN ({_marks(types)})"
            params += list(types)
        return sql, params

    def first_match(self, query: DCBQuery | None, after: int) -> Statement:
        """One position (any) that matches ``query`` after ``after``: the append condition."""
        sql, params = self.matching_positions(query, after, None)
        return f"SELECT m.position FROM ({sql}) m LIMIT 1", params

    def select_events(
        self, query: DCBQuery | None, after: int, upto: int | None, limit: int | None
    ) -> Statement:
        """The matching events in position order: position, type, data, tags."""
        columns = f"e.position, e.{self.type}, e.data, e.tags"
        if matches_all(query):
            statement = (
                f"SELECT {columns} FROM {self.events} e"
                " WHERE e.application_name = %s AND e.position > %s"
            )
            params: list[Any] = [self.application_name, after]
            if upto is not None:
                statement += " AND e.position <= %s"
                params.append(upto)
            statement += " ORDER BY e.position"
        else:
            sql, params = self.matching_positions(query, after, upto)
            statement = (
                f"SELECT {columns} FROM ({sql}) m"
                f" JOIN {self.events} e ON e.application_name = %s AND e.position = m.position"
                " ORDER BY e.position"
            )
            params.append(self.application_name)
        if limit is not None:
            statement += " LIMIT %s"
            params.append(limit)
        return statement, params

    def insert_events(self, rows: Sequence[tuple[int, str, bytes, str]]) -> Statement:
        """Insert ``(position, type, data, tags as JSON)`` rows."""
        values = ", ".join([f"(%s, %s, %s, %s, {self.json})"] * len(rows))
        sql = (
            f"INSERT INTO {self.events} (application_name, position, {self.type}, data, tags)"
            f" VALUES {values}"
        )
        return sql, [value for row in rows for value in (self.application_name, *row)]

    def insert_tags(self, rows: Sequence[tuple[str, int]]) -> Statement:
        """Insert ``(tag, position)`` rows."""
        values = ", ".join(["(%s, %s, %s)"] * len(rows))
        sql = f"INSERT INTO {self.tags} (application_name, tag, position) VALUES {values}"
        return sql, [value for row in rows for value in (self.application_name, *row)]

    def head(self) -> Statement:
        return (
            f"SELECT MAX(position) FROM {self.events} WHERE application_name = %s",
            [self.application_name],
        )


def matches_all(query: DCBQuery | None) -> bool:
    """No items, or an item that names neither types nor tags."""
    if query is None or not query.items:
        return True
    return any(not item.types and not item.tags for item in query.items)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))
