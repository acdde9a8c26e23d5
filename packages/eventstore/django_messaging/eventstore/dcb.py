"""Dynamic consistency boundaries (``eventsourcing.dcb``) on a Django database.

:class:`DjangoDCBRecorder` implements :class:`eventsourcing.dcb.api.DCBRecorder`: tagged events
in one sequence per application, read by query (types and tags), appended under an optional
append condition ("fail if an event matching this query exists after position N").

An append runs in one transaction that first moves the application's :class:`DCBSequence`
row on by the number of events. That row update is the lock: concurrent appends of one
application queue up behind it (a row lock on PostgreSQL and MariaDB, the database-wide
write lock on SQLite), so the condition is checked against every append committed before,
and no other append can slip in between the check and the insert. Positions are contiguous,
and commit in order, so a reader never sees a gap that is filled later.

``DCBApplication(env={"PERSISTENCE_MODULE": "django_messaging.eventstore"})`` gets this
recorder from :meth:`~django_messaging.eventstore.factory.Factory.dcb_recorder`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBReadResponse,
    DCBRecorder,
    DCBSequencedEvent,
)
from eventsourcing.persistence import IntegrityError, ProgrammingError

from django_messaging.eventstore import wakeups
from django_messaging.eventstore.dcb_queries import DCBQueries
from django_messaging.eventstore.dcb_tables import (
    DCB_SEQUENCE_TABLE,
    DCB_TAG_LENGTH,
    DCB_TYPE_LENGTH,
)
from django_messaging.eventstore.dialects import dialect_for
from django_messaging.eventstore.errors import retrying, translated
from django_messaging.eventstore.tables import APPLICATION_NAME_LENGTH

if TYPE_CHECKING:
    from django_messaging.eventstore.dcb_subscription import DjangoDCBSubscription

__all__ = ["DjangoDCBReadResponse", "DjangoDCBRecorder"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Rows per INSERT statement: under 1,000 parameters, the smallest limit (older SQLite).
EVENTS_PER_INSERT = 150
TAGS_PER_INSERT = 300


def _chunks(rows: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _tag_list(tags: Any) -> list[str]:
    # JSON columns come back decoded on some backends and as text on others.
    return list(json.loads(tags) if isinstance(tags, str | bytes) else tags)


class DjangoDCBReadResponse(DCBReadResponse):
    """The events of one read, and the position the read is consistent up to (``head``)."""

    def __init__(self, events: Sequence[DCBSequencedEvent], head: int | None) -> None:
        self._events = iter(events)
        self._head = head

    @property
    def head(self) -> int | None:
        return self._head

    def __next__(self) -> DCBSequencedEvent:
        return next(self._events)


class DjangoDCBRecorder(DCBRecorder):
    """The DCB event sequence of ``application_name`` in ``DATABASES[using]``."""

    def __init__(
        self,
        application_name: str,
        using: str = DEFAULT_DB_ALIAS,
        *,
        poll_interval: float = 0.5,
    ) -> None:
        if len(application_name) > APPLICATION_NAME_LENGTH:
            raise ProgrammingError(
                f"Application name {application_name!r} is {len(application_name)} characters "
                f"long; the event store accepts at most {APPLICATION_NAME_LENGTH}."
            )
        self.application_name = application_name
        self.using = using
        self.poll_interval = poll_interval

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.application_name!r} using={self.using!r}>"

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    @cached_property
    def wakeup_key(self) -> wakeups.Key:
        """Subscriptions of this process to this sequence are woken under this key."""
        return (self.using, f"dcb:{self.application_name}")

    @cached_property
    def channel_name(self) -> str:
        """The PostgreSQL channel on which appends to this sequence are announced."""
        digest = hashlib.sha1(self.application_name.encode()).hexdigest()[:20]
        return f"messaging_dcb_{digest}"

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        # In-memory SQLite shares one lock with the other recorders of that database.
        with dialect_for(self.connection).serialised(self.connection):
            yield

    # Reading.

    @retrying()
    def read(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> DjangoDCBReadResponse:
        if limit is not None and limit <= 0:
            return DjangoDCBReadResponse([], None)
        with translated(), self._serialised(), self.connection.cursor() as cursor:
            head: int | None = None
            if limit is None or not dialect_for(self.connection).snapshots_are_atomic:
                # The head is read first, and events are read up to it only: an append that
                # commits in between is neither half seen nor claimed as seen, and on MariaDB
                # a page never shows an append without those committed before it.
                cursor.execute(*self.queries.head())
                head = cursor.fetchone()[0]
                if head is None or head <= (after or 0):
                    return DjangoDCBReadResponse([], head if limit is None else None)
            cursor.execute(*self.queries.select_events(query, after or 0, head, limit))
            sequenced = [
                DCBSequencedEvent(
                    event=DCBEvent(type=type_, data=bytes(data), tags=_tag_list(tags)),
                    position=position,
                )
                for position, type_, data, tags in cursor.fetchall()
            ]
        if limit is not None and sequenced:
            head = sequenced[-1].position
        return DjangoDCBReadResponse(sequenced, head)

    @cached_property
    def queries(self) -> DCBQueries:
        return DCBQueries(self.connection, self.application_name)

    # Appending.

    @retrying()
    def append(
        self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None
    ) -> int:
        """Append ``events`` unless ``condition`` fails; the position of the last one.

        Raises :class:`eventsourcing.persistence.IntegrityError` when an event matching
        ``condition.fail_if_events_match`` exists after ``condition.after``.
        """
        if not events:
            raise ProgrammingError("Append at least one event")
        self._check_sizes(events)
        with translated(), self._serialised(), transaction.atomic(using=self.using):
            last = self._reserve(len(events))
            if condition is not None:
                self._check(condition)
            self._insert(events, first=last - len(events) + 1)
            wakeups.wake_on_commit(self.wakeup_key)
        return last

    def _check(self, condition: DCBAppendCondition) -> None:
        """Raise ``IntegrityError`` if an event matching the condition's query exists after
        ``condition.after``."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                *self.queries.first_match(condition.fail_if_events_match, condition.after or 0)
            )
            row = cursor.fetchone()
        if row is not None:
            logger.info(
                "DCB append to %r refused: event @%d matches the append condition (after=%s)",
                self.application_name,
                row[0],
                condition.after,
            )
            raise IntegrityError(
                f"Append condition failed: event at position {row[0]} of "
                f"{self.application_name!r} matches {condition}"
            )

    def _check_sizes(self, events: Sequence[DCBEvent]) -> None:
        for event in events:
            if len(event.type) > DCB_TYPE_LENGTH:
                raise ProgrammingError(
                    f"Event type {event.type[:60]!r}... is longer than {DCB_TYPE_LENGTH}"
                )
            for tag in event.tags:
                if len(tag) > DCB_TAG_LENGTH:
                    raise ProgrammingError(f"Tag {tag[:60]!r}... is longer than {DCB_TAG_LENGTH}")

    def _reserve(self, count: int) -> int:
        """Move the application's sequence on by ``count`` (locking it); the new last position."""
        ops = self.connection.ops
        table = ops.quote_name(DCB_SEQUENCE_TABLE)
        bump = f"UPDATE {table} SET last_position = last_position + %s WHERE application_name = %s"
        returning = self.connection.vendor == "postgresql" or (
            self.connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)
        )
        params: list[Any] = [count, self.application_name]
        if self.connection.vendor == "postgresql":
            # Subscribers in other processes hear of the append when (and if) it commits.
            bump += " RETURNING last_position, pg_notify(%s, '')"
            params.append(self.channel_name)
        elif returning:
            bump += " RETURNING last_position"
        with self.connection.cursor() as cursor:
            for _ in range(2):
                cursor.execute(bump, params)
                if returning:
                    row = cursor.fetchone()
                    if row is not None:
                        return int(row[0])
                elif cursor.rowcount:
                    cursor.execute(
                        f"SELECT last_position FROM {table} WHERE application_name = %s",
                        [self.application_name],
                    )
                    return int(cursor.fetchone()[0])
                cursor.execute(self._create_sequence_sql(table), [self.application_name])
        raise AssertionError(f"no sequence row for {self.application_name!r}")

    def _create_sequence_sql(self, table: str) -> str:
        """Create the application's sequence row at 0, keeping one that exists already."""
        columns = f"{table} (application_name, last_position) VALUES (%s, 0)"
        if self.connection.vendor == "mysql":
            return f"INSERT IGNORE INTO {columns}"
        return f"INSERT INTO {columns} ON CONFLICT DO NOTHING"

    def _insert(self, events: Sequence[DCBEvent], first: int) -> None:
        rows = [
            (position, event.type, event.data, json.dumps(list(event.tags)))
            for position, event in enumerate(events, start=first)
        ]
        tags = [
            (tag, position)
            for position, event in enumerate(events, start=first)
            for tag in dict.fromkeys(event.tags)
        ]
        with self.connection.cursor() as cursor:
            for chunk in _chunks(rows, EVENTS_PER_INSERT):
                cursor.execute(*self.queries.insert_events(chunk))
            for tag_chunk in _chunks(tags, TAGS_PER_INSERT):
                cursor.execute(*self.queries.insert_tags(tag_chunk))

    # Subscribing.

    def subscribe(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
    ) -> DjangoDCBSubscription:
        from django_messaging.eventstore.dcb_subscription import DjangoDCBSubscription

        return DjangoDCBSubscription(self, query=query, after=after)
