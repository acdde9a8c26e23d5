"""Names and sizes of the event store's tables, importable before Django's apps are loaded.

All applications share the tables the migrations create, unless an application is given a table
prefix (``DJANGO_TABLE_PREFIX``): then its events, snapshots and tracking positions live in
``<prefix>_events``, ``<prefix>_snapshots`` and ``<prefix>_tracking``, the names the
``eventsourcing.postgres`` module gives an application's tables, created by the migration
operation :class:`~django_messaging.eventstore.operations.CreateApplicationTables`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EVENTS_TABLE = "messaging_eventstore_stored_event"
AGGREGATE_TABLE = "messaging_eventstore_aggregate_record"
TRACKING_TABLE = "messaging_eventstore_tracking"
SEQUENCE_TABLE = "messaging_eventstore_sequence"

#: Longest application name the tables accept.
APPLICATION_NAME_LENGTH = 150
#: Longest originator id (``ORIGINATOR_ID_TYPE=text``); UUIDs are stored as 36 characters.
ORIGINATOR_ID_LENGTH = 255

#: A table prefix: lower case, so that every database spells the names alike, and short enough
#: for the longest name derived from it (a constraint) to fit PostgreSQL's 63 characters.
PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class ApplicationTables:
    """The tables one application's recorders use (the sequence table is always shared)."""

    events: str = EVENTS_TABLE
    aggregate: str = AGGREGATE_TABLE
    tracking: str = TRACKING_TABLE
    prefix: str = ""


SHARED_TABLES = ApplicationTables()


def application_tables(prefix: str | None) -> ApplicationTables:
    """The tables of an application with table prefix ``prefix`` (the shared ones for none).

    Raises ``ValueError`` for a prefix that is not lower-case letters, digits and ``_``
    (not starting with a digit), at most 40 characters.
    """
    if not prefix:
        return SHARED_TABLES
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"table prefix {prefix!r} must be lower-case letters, digits and '_', not starting "
            "with a digit, at most 40 characters"
        )
    return ApplicationTables(
        events=f"{prefix}_events",
        aggregate=f"{prefix}_snapshots",
        tracking=f"{prefix}_tracking",
        prefix=prefix,
    )
