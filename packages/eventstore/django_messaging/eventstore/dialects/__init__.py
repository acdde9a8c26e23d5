"""One :class:`~.base.Dialect` per database vendor, chosen once per connection."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from django_messaging.eventstore.dialects.base import Dialect, EventRow
from django_messaging.eventstore.dialects.mysql import MySQLDialect
from django_messaging.eventstore.dialects.postgresql import PostgreSQLDialect
from django_messaging.eventstore.dialects.sqlite import SQLiteDialect

__all__ = ["Dialect", "EventRow", "dialect_for"]

_DIALECTS: dict[str, Dialect] = {
    dialect.vendor: dialect for dialect in (PostgreSQLDialect(), SQLiteDialect(), MySQLDialect())
}
_PORTABLE = Dialect()


def dialect_for(connection: BaseDatabaseWrapper) -> Dialect:
    """The dialect of ``connection``'s vendor; the portable one for other vendors."""
    return _DIALECTS.get(connection.vendor, _PORTABLE)
