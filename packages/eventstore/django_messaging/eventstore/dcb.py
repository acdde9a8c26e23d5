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

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Max, Q, QuerySet
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
from django_messaging.eventstore.dcb_tables import (
    DCB_SEQUENCE_TABLE,
    DCB_TAG_LENGTH,
    DCB_TYPE_LENGTH,
)
from django_messaging.eventstore.dialects import dialect_for
from django_messaging.eventstore.errors import retrying, translated
from django_messaging.eventstore.tables import APPLICATION_NAME_LENGTH

if TYPE_CHECKING:
    from django_messaging.eventstore.dcb_models import DCBEventRecord
    from django_messaging.eventstore.dcb_subscription import DjangoDCBSubscription

__all__ = ["DjangoDCBReadResponse", "DjangoDCBRecorder"]

logger = logging.getLogger(__name__)

#: Rows per INSERT statement (SQLite limits the parameters of one statement).
BATCH_SIZE = 200


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
        with translated(), self._serialised():
            events = self._events().order_by("position")
            head: int | None = None
            if limit is None:
                # The head is read first, and events are read up to it only: an append that
                # commits in between is neither half seen nor claimed as seen.
                head = self._events().aggregate(head=Max("position"))["head"]
                if head is None:
                    return DjangoDCBReadResponse([], None)
                events = events.filter(position__lte=head)
            if after is not None:
                events = events.filter(position__gt=after)
            events = self._matching(events, query)
            if limit is not None:
                events = events[:limit]
            sequenced = [
                DCBSequencedEvent(
                    event=DCBEvent(type=type_, data=bytes(data), tags=list(tags)),
                    position=position,
                )
                for position, type_, data, tags in events.values_list(
                    "position", "type", "data", "tags"
                )
            ]
        if limit is not None and sequenced:
            head = sequenced[-1].position
        return DjangoDCBReadResponse(sequenced, head)

    def _events(self) -> QuerySet[DCBEventRecord]:
        from django_messaging.eventstore.dcb_models import DCBEventRecord

        return DCBEventRecord.objects.using(self.using).filter(
            application_name=self.application_name
        )

    def _matching(
        self, events: QuerySet[DCBEventRecord], query: DCBQuery | None
    ) -> QuerySet[DCBEventRecord]:
        """``events`` that match at least one item of ``query`` (all events for no items).

        An event matches an item when its type is one of the item's types (or the item names
        none) and it carries every one of the item's tags.
        """
        from django_messaging.eventstore.dcb_models import DCBTagRecord

        if query is None or not query.items:
            return events
        condition = Q()
        for item in query.items:
            if not item.types and not item.tags:
                return events
            matches_item = Q(type__in=item.types) if item.types else Q()
            for tag in dict.fromkeys(item.tags):
                tagged = DCBTagRecord.objects.filter(
                    application_name=self.application_name, tag=tag
                ).values("position")
                matches_item &= Q(position__in=tagged)
            condition |= matches_item
        return events.filter(condition)

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
                conflicting = self._matching(self._events(), condition.fail_if_events_match)
                if condition.after is not None:
                    conflicting = conflicting.filter(position__gt=condition.after)
                conflict = conflicting.order_by("position").values_list("position", flat=True)
                first_conflict = conflict.first()
                if first_conflict is not None:
                    logger.info(
                        "DCB append to %r refused: event @%d matches the append condition "
                        "(after=%s)",
                        self.application_name,
                        first_conflict,
                        condition.after,
                    )
                    raise IntegrityError(
                        f"Append condition failed: event at position {first_conflict} of "
                        f"{self.application_name!r} matches {condition}"
                    )
            self._insert(events, first=last - len(events) + 1)
            wakeups.wake_on_commit(self.wakeup_key)
        return last

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
        with self.connection.cursor() as cursor:
            for _ in range(2):
                cursor.execute(
                    bump + (" RETURNING last_position" if returning else ""),
                    [count, self.application_name],
                )
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
        from django_messaging.eventstore.dcb_models import DCBEventRecord, DCBTagRecord

        name = self.application_name
        records = [
            DCBEventRecord(
                application_name=name,
                position=position,
                type=event.type,
                data=event.data,
                tags=list(event.tags),
            )
            for position, event in enumerate(events, start=first)
        ]
        tags = [
            DCBTagRecord(application_name=name, tag=tag, position=position)
            for position, event in enumerate(events, start=first)
            for tag in dict.fromkeys(event.tags)
        ]
        DCBEventRecord.objects.using(self.using).bulk_create(records, batch_size=BATCH_SIZE)
        if tags:
            DCBTagRecord.objects.using(self.using).bulk_create(tags, batch_size=BATCH_SIZE)

    # Subscribing.

    def subscribe(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
    ) -> DjangoDCBSubscription:
        from django_messaging.eventstore.dcb_subscription import DjangoDCBSubscription

        return DjangoDCBSubscription(self, query=query, after=after)
