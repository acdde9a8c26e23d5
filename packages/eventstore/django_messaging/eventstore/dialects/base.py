"""What the recorders ask of a database, answered in SQL that every backend here accepts.

A backend module (:mod:`.postgresql`, :mod:`.sqlite`, :mod:`.mysql`) subclasses
:class:`Dialect` and overrides only what its database does differently or better.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

from django.db.backends.base.base import BaseDatabaseWrapper

#: ``(originator_id, originator_version, topic, state)`` of one event, as stored.
EventRow = tuple[str, int, str, bytes]


class Dialect:
    """The portable answers; also what an unknown vendor gets."""

    vendor: ClassVar[str] = ""
    #: The bump statement returns the new last id (else it is read back with a SELECT).
    bump_returns_last_id: ClassVar[bool] = False
    #: A whole append (reserve ids, notify, insert) can run as one statement.
    appends_in_one_statement: ClassVar[bool] = False
    #: Other processes' appends can be waited for (:meth:`listen`), not only polled.
    listens: ClassVar[bool] = False
    #: A statement that sees an append also sees every append committed before it. Where
    #: that is not known (MariaDB builds a read view while transactions commit), readers of a
    #: log read its head first and the rows up to it in a second statement.
    snapshots_are_atomic: ClassVar[bool] = False

    def serialised(self, connection: BaseDatabaseWrapper) -> AbstractContextManager[Any]:
        """Held around every statement of a recorder on ``connection``."""
        return nullcontext()

    def bump_sequence(self, sequence: str) -> str:
        """Move an application's last id on by ``%s`` (count), locking its row."""
        return f"UPDATE {sequence} SET last_id = last_id + %s WHERE application_name = %s"

    def bump_params(self, count: int, application_name: str, channel: str) -> list[Any]:
        return [count, application_name]

    def create_sequence_row(self, sequence: str) -> str:
        """Create an application's sequence row at 0 (a row that exists already is kept)."""
        return f"INSERT INTO {sequence} (application_name, last_id) VALUES (%s, 0)"

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
        """The ids of the appended events, or ``None`` when this needs the general path."""
        return None

    def listen(
        self, using: str, channel: str, notified: threading.Event, stopped: Callable[[], bool]
    ) -> None:
        """Set ``notified`` on each append by any process until ``stopped()``."""
        raise NotImplementedError(f"{self.vendor or 'this database'} cannot listen for appends")
