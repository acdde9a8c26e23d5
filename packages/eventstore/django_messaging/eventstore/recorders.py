"""Recorders of the eventsourcing library on a Django database.

The classes implement the interfaces of :mod:`eventsourcing.persistence` the way
``eventsourcing.postgres`` and ``eventsourcing.sqlite`` do, but through a Django connection
(``DATABASES[using]``), so they work on every database Django supports here (PostgreSQL,
SQLite, MariaDB/MySQL) and join a caller's ``transaction.atomic`` block:

* :class:`DjangoAggregateRecorder` -- snapshots and other per-aggregate sequences;
* :class:`DjangoApplicationRecorder` -- events plus the application's notification log,
  with :meth:`~DjangoApplicationRecorder.subscribe`;
* :class:`DjangoTrackingRecorder` -- positions in upstream logs (materialised views);
* :class:`DjangoProcessRecorder` -- events and a tracking position in one transaction.

Writes use a few plain SQL statements per call (one multi-row ``INSERT`` per batch), not one
ORM ``save()`` per event.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property
from typing import Any
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    Notification,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from django_messaging.eventstore import wakeups
from django_messaging.eventstore.dialects import Dialect, EventRow, dialect_for
from django_messaging.eventstore.errors import retrying, translated
from django_messaging.eventstore.subscription import DjangoSubscription
from django_messaging.eventstore.tables import (
    APPLICATION_NAME_LENGTH,
    ORIGINATOR_ID_LENGTH,
    SEQUENCE_TABLE,
    SHARED_TABLES,
    ApplicationTables,
)

__all__ = [
    "DjangoAggregateRecorder",
    "DjangoApplicationRecorder",
    "DjangoProcessRecorder",
    "DjangoRecorder",
    "DjangoTrackingRecorder",
]

#: Rows per INSERT statement when the database does not limit query parameters.
MAX_ROWS_PER_INSERT = 500


#: ``Notification``'s fields in the order its constructor takes them positionally (cheaper than
#: by keyword for a frozen dataclass), when the installed eventsourcing has that order.
_NOTIFICATION_POSITIONAL = [f.name for f in dataclasses.fields(Notification)] == [
    "originator_id",
    "originator_version",
    "topic",
    "state",
    "id",
]


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes(value)


class DjangoRecorder:
    """What every recorder here shares: the application, the database alias, id handling,
    and the tables (``tables``: the shared ones unless the application has its own, see
    :func:`~django_messaging.eventstore.tables.application_tables`)."""

    def __init__(
        self,
        application_name: str,
        using: str = DEFAULT_DB_ALIAS,
        *,
        originator_id_type: str = "uuid",
        tables: ApplicationTables = SHARED_TABLES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(application_name) > APPLICATION_NAME_LENGTH:
            raise ProgrammingError(
                f"Application name {application_name!r} is {len(application_name)} characters "
                f"long; the event store accepts at most {APPLICATION_NAME_LENGTH}."
            )
        if originator_id_type not in ("uuid", "text"):
            raise ValueError(
                f"originator_id_type must be 'uuid' or 'text', not {originator_id_type!r}"
            )
        self.application_name = application_name
        self.using = using
        self.originator_id_type = originator_id_type
        self.tables = tables

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.application_name!r} using={self.using!r}>"

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    @cached_property
    def vendor(self) -> str:
        return self.connection.vendor

    @cached_property
    def dialect(self) -> Dialect:
        """What this recorder's database does its own way (see :mod:`.dialects`)."""
        return dialect_for(self.connection)

    def _table(self, name: str) -> str:
        return self.connection.ops.quote_name(name)

    def _serialised(self) -> AbstractContextManager[Any]:
        return self.dialect.serialised(self.connection)

    def _rows_per_insert(self, columns: int) -> int:
        limit = self.connection.features.max_query_params
        return max(1, min(MAX_ROWS_PER_INSERT, limit // columns)) if limit else MAX_ROWS_PER_INSERT

    def _db_originator_id(self, originator_id: UUID | str) -> str:
        if self.originator_id_type == "uuid" and not isinstance(originator_id, UUID):
            try:
                originator_id = UUID(str(originator_id))
            except ValueError:
                raise DataError(
                    f"Originator id {originator_id!r} is not a UUID; set "
                    "ORIGINATOR_ID_TYPE=text to store other ids."
                ) from None
        value = str(originator_id)
        if len(value) > ORIGINATOR_ID_LENGTH:
            raise DataError(f"Originator id longer than {ORIGINATOR_ID_LENGTH} characters")
        return value

    def _db_originator_ids(self, stored_events: Sequence[StoredEvent]) -> list[str]:
        """The stored form of each event's originator id, checked once per originator."""
        seen: dict[UUID | str, str] = {}
        values = []
        for event in stored_events:
            value = seen.get(event.originator_id)
            if value is None:
                value = seen[event.originator_id] = self._db_originator_id(event.originator_id)
            values.append(value)
        return values

    def _py_originator_id(self, value: str) -> UUID | str:
        return UUID(value) if self.originator_id_type == "uuid" else value

    def _select_events(
        self,
        sql: str,
        params: list[Any],
        originator_id: UUID | str,
        *,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        if gt is not None:
            sql += " AND originator_version > %s"
            params.append(gt)
        if lte is not None:
            sql += " AND originator_version <= %s"
            params.append(lte)
        sql += " ORDER BY originator_version DESC" if desc else " ORDER BY originator_version ASC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        oid = self._py_originator_id(self._db_originator_id(originator_id))
        with translated(), self._serialised(), self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [
            StoredEvent(
                originator_id=oid, originator_version=version, topic=topic, state=_as_bytes(state)
            )
            for version, topic, state in rows
        ]


class DjangoAggregateRecorder(DjangoRecorder, AggregateRecorder):
    """Stored events of aggregates, for one application and one ``purpose`` ("snapshots")."""

    def __init__(
        self,
        application_name: str,
        using: str = DEFAULT_DB_ALIAS,
        *,
        purpose: str = "snapshots",
        originator_id_type: str = "uuid",
        **kwargs: Any,
    ) -> None:
        super().__init__(application_name, using, originator_id_type=originator_id_type, **kwargs)
        self.purpose = purpose

    @cached_property
    def _insert_prefix(self) -> str:
        return (
            f"INSERT INTO {self._table(self.tables.aggregate)} "
            "(application_name, purpose, originator_id, originator_version, topic, state) VALUES "
        )

    @retrying()
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return None
        rows = [
            (self.application_name, self.purpose, oid, e.originator_version, e.topic, e.state)
            for oid, e in zip(self._db_originator_ids(stored_events), stored_events, strict=True)
        ]
        with translated(), self._serialised():
            # A single row needs no transaction of its own: the INSERT is atomic already.
            atomic = transaction.atomic(using=self.using) if len(rows) > 1 else nullcontext()
            with atomic, self.connection.cursor() as cursor:
                per_statement = self._rows_per_insert(6)
                for start in range(0, len(rows), per_statement):
                    chunk = rows[start : start + per_statement]
                    values = ",".join(["(%s,%s,%s,%s,%s,%s)"] * len(chunk))
                    cursor.execute(self._insert_prefix + values, [v for row in chunk for v in row])
        return None

    @retrying()
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        sql = (
            f"SELECT originator_version, topic, state FROM {self._table(self.tables.aggregate)} "
            "WHERE application_name = %s AND purpose = %s AND originator_id = %s"
        )
        params: list[Any] = [
            self.application_name,
            self.purpose,
            self._db_originator_id(originator_id),
        ]
        return self._select_events(
            sql, params, originator_id, gt=gt, lte=lte, desc=desc, limit=limit
        )


class DjangoApplicationRecorder(DjangoRecorder, ApplicationRecorder):
    """Stored events and the application's notification log.

    Notification ids come from the application's row in the sequence table: an insert adds
    the batch size to it, which locks the row until the transaction ends, then writes the
    events with the ids it reserved. So each application's ids are contiguous from 1,
    transactions of one application commit in id order (a reader never passes over an id that
    is filled in later), a rollback returns its ids, and applications do not block each other.
    Where one statement's snapshot may show an append without an earlier committed one
    (MariaDB), :meth:`select_notifications` reads the head first and the rows up to it.
    """

    def __init__(
        self,
        application_name: str,
        using: str = DEFAULT_DB_ALIAS,
        *,
        originator_id_type: str = "uuid",
        poll_interval: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(application_name, using, originator_id_type=originator_id_type, **kwargs)
        self.poll_interval = poll_interval

    @cached_property
    def channel_name(self) -> str:
        """The channel on which appends to this application's log are announced."""
        digest = hashlib.sha1(self.application_name.encode()).hexdigest()[:20]
        return f"messaging_es_{digest}"

    @cached_property
    def _events_table(self) -> str:
        return self._table(self.tables.events)

    @cached_property
    def _sql(self) -> dict[str, str]:
        events = self._events_table
        sequence = self._table(SEQUENCE_TABLE)
        return {
            "insert": (
                f"INSERT INTO {events} (application_name, notification_id, originator_id, "
                "originator_version, topic, state) VALUES "
            ),
            "bump": self.dialect.bump_sequence(sequence),
            "create": self.dialect.create_sequence_row(sequence),
            "last": f"SELECT last_id FROM {sequence} WHERE application_name = %s",
            "select": (
                f"SELECT notification_id, originator_id, originator_version, topic, state "
                f"FROM {events} WHERE application_name = %s"
            ),
            "max": f"SELECT MAX(notification_id) FROM {events} WHERE application_name = %s",
            "events": (
                f"SELECT originator_version, topic, state FROM {events} "
                "WHERE application_name = %s AND originator_id = %s"
            ),
        }

    def _reserve_ids(self, cursor: Any, count: int) -> int:
        """Lock this application's sequence row, move it on by ``count``; the new last id."""
        sql = self._sql
        returning = self.dialect.bump_returns_last_id
        params = self.dialect.bump_params(count, self.application_name, self.channel_name)
        for _ in range(2):
            cursor.execute(sql["bump"], params)
            if returning:
                row = cursor.fetchone()
                if row is not None:
                    return int(row[0])
            elif cursor.rowcount:
                cursor.execute(sql["last"], [self.application_name])
                return int(cursor.fetchone()[0])
            # First events of this application: create its row, then bump it.
            cursor.execute(sql["create"], [self.application_name])
        raise ProgrammingError(f"Could not reserve notification ids for {self.application_name!r}")

    def _insert_notified_events(
        self, cursor: Any, stored_events: Sequence[StoredEvent]
    ) -> list[int]:
        last_id = self._reserve_ids(cursor, len(stored_events))
        first_id = last_id - len(stored_events) + 1
        ids = list(range(first_id, last_id + 1))
        app = self.application_name
        rows = [(app, n, *event) for n, event in zip(ids, self._rows(stored_events), strict=True)]
        per_statement = self._rows_per_insert(6)
        prefix = self._sql["insert"]
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = ",".join(["(%s,%s,%s,%s,%s,%s)"] * len(chunk))
            cursor.execute(prefix + values, [v for row in chunk for v in row])
        return ids

    def _rows(self, stored_events: Sequence[StoredEvent]) -> list[EventRow]:
        return [
            (oid, e.originator_version, e.topic, e.state)
            for oid, e in zip(self._db_originator_ids(stored_events), stored_events, strict=True)
        ]

    def _before_insert(self, cursor: Any, **kwargs: Any) -> None:
        """Hook for what must be written in the same transaction (tracking)."""

    @retrying()
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids: list[int] | None = None
        if (
            self.dialect.appends_in_one_statement
            and kwargs.get("tracking") is None
            and 0 < len(stored_events) <= MAX_ROWS_PER_INSERT
        ):
            with translated(), self.connection.cursor() as cursor:
                ids = self.dialect.append_in_one_statement(
                    cursor,
                    events_table=self._events_table,
                    bump=self._sql["bump"],
                    bump_params=self.dialect.bump_params(
                        len(stored_events), self.application_name, self.channel_name
                    ),
                    application_name=self.application_name,
                    rows=self._rows(stored_events),
                )
        if ids is None:
            ids = []
            with translated(), self._serialised(), transaction.atomic(using=self.using):
                with self.connection.cursor() as cursor:
                    self._before_insert(cursor, **kwargs)
                    if stored_events:
                        ids = self._insert_notified_events(cursor, stored_events)
                self._wake_subscriptions(stored_events)
        else:
            self._wake_subscriptions(stored_events)
        return ids

    def _wake_subscriptions(self, stored_events: Sequence[StoredEvent]) -> None:
        if stored_events:
            wakeups.wake_on_commit((self.using, self.application_name))

    @retrying()
    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        params: list[Any] = [self.application_name, self._db_originator_id(originator_id)]
        return self._select_events(
            self._sql["events"],
            params,
            originator_id,
            gt=gt,
            lte=lte,
            desc=desc,
            limit=limit,
        )

    @retrying()
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        first = None if start is None else start if inclusive_of_start else start + 1
        if not self.dialect.snapshots_are_atomic:
            head = self._head()
            if head is None or (first is not None and head < first):
                return []
            stop = head if stop is None else min(stop, head)
        # An application's ids are contiguous, so a page from ``first`` lies within
        # [first, first + limit - 1]. Bounded above, the range is read from the
        # (application, id) index row by row, whatever the planner knows of the table; an
        # open range on a table without statistics yet reads every later row and sorts them.
        upper, bounded = stop, False
        if first is not None and not topics and (stop is None or first + limit - 1 < stop):
            upper, bounded = first + limit - 1, True
        rows = self._select_notification_rows(start, limit, upper, topics, inclusive_of_start)
        if bounded and len(rows) < limit:
            # The end of the log, or ids are missing (events written by other means): read on
            # from the last row returned, not from the bound, because events committed since
            # the first read may fill in ids below the bound.
            after, inclusive = (rows[-1][0], False) if rows else (start, inclusive_of_start)
            rows += self._select_notification_rows(
                after, limit - len(rows), stop, topics, inclusive
            )
        # An aggregate's events sit side by side in the log: parse each originator id once.
        originator_ids: dict[str, UUID | str] = {}
        py_id = self._py_originator_id
        notifications: list[Notification] = []
        append = notifications.append
        for nid, oid, version, topic, state in rows:
            originator_id = originator_ids.get(oid)
            if originator_id is None:
                originator_id = originator_ids[oid] = py_id(oid)
            if type(state) is not bytes:
                state = bytes(state)
            if _NOTIFICATION_POSITIONAL:
                append(Notification(originator_id, version, topic, state, nid))
            else:  # pragma: no cover - another eventsourcing's field order
                append(
                    Notification(
                        id=nid,
                        originator_id=originator_id,
                        originator_version=version,
                        topic=topic,
                        state=state,
                    )
                )
        return notifications

    def _select_notification_rows(
        self,
        start: int | None,
        limit: int,
        stop: int | None,
        topics: Sequence[str],
        inclusive_of_start: bool,
    ) -> list[tuple[Any, ...]]:
        sql = self._sql["select"]
        params: list[Any] = [self.application_name]
        if start is not None:
            sql += (
                " AND notification_id >= %s" if inclusive_of_start else " AND notification_id > %s"
            )
            params.append(start)
        if stop is not None:
            sql += " AND notification_id <= %s"
            params.append(stop)
        if topics:
            sql += f" AND topic IN ({','.join(['%s'] * len(topics))})"
            params.extend(topics)
        sql += " ORDER BY notification_id LIMIT %s"
        params.append(limit)
        with translated(), self._serialised(), self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    @retrying()
    def max_notification_id(self) -> int | None:
        return self._head()

    def _head(self) -> int | None:
        with translated(), self._serialised(), self.connection.cursor() as cursor:
            cursor.execute(self._sql["max"], [self.application_name])
            row = cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return DjangoSubscription(recorder=self, gt=gt, topics=topics)


class DjangoTrackingRecorder(DjangoRecorder, TrackingRecorder):
    """Positions of this application (or materialised view) in upstream notification logs.

    Subclass it for a materialised view: write the view's rows and call
    :meth:`insert_tracking` inside one ``transaction.atomic(using=self.using)`` block, and the
    rows and the position commit together.
    """

    @cached_property
    def _tracking_sql(self) -> dict[str, str]:
        table = self._table(self.tables.tracking)
        return {
            "advance": (
                f"UPDATE {table} SET notification_id = %s WHERE application_name = %s "
                "AND upstream_application_name = %s AND notification_id < %s"
            ),
            "insert": (
                f"INSERT INTO {table} (application_name, upstream_application_name, "
                "notification_id) VALUES (%s, %s, %s)"
            ),
            "max": (
                f"SELECT notification_id FROM {table} WHERE application_name = %s "
                "AND upstream_application_name = %s"
            ),
        }

    def _insert_tracking(self, cursor: Any, tracking: Tracking) -> None:
        sql = self._tracking_sql
        upstream, position = tracking.application_name, tracking.notification_id
        cursor.execute(sql["advance"], [position, self.application_name, upstream, position])
        if cursor.rowcount == 1:
            return
        # No row, or a row at or beyond this position: the INSERT creates the row or fails on
        # the unique constraint, which is the IntegrityError a repeated position must raise.
        cursor.execute(sql["insert"], [self.application_name, upstream, position])

    @retrying()
    def insert_tracking(self, tracking: Tracking) -> None:
        with (
            translated(),
            self._serialised(),
            transaction.atomic(using=self.using),
            self.connection.cursor() as cursor,
        ):
            self._insert_tracking(cursor, tracking)

    @retrying()
    def max_tracking_id(self, application_name: str) -> int | None:
        with translated(), self._serialised(), self.connection.cursor() as cursor:
            cursor.execute(self._tracking_sql["max"], [self.application_name, application_name])
            row = cursor.fetchone()
        return None if row is None else int(row[0])


class DjangoProcessRecorder(DjangoTrackingRecorder, DjangoApplicationRecorder, ProcessRecorder):
    """Events of a process application and the position it reached upstream, atomically."""

    def _before_insert(self, cursor: Any, **kwargs: Any) -> None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(cursor, tracking)
