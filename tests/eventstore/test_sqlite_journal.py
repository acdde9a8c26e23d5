"""SQLite file databases hold the event store in WAL mode, as ``eventsourcing.sqlite`` does."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing

import pytest
from django.db import connections, transaction
from eventsourcing.persistence import StoredEvent

from django_messaging.eventstore.recorders import DjangoApplicationRecorder
from tests.eventstore.base import EventStoreTestCase


def _events(count: int) -> list[StoredEvent]:
    originator = uuid.uuid4()
    return [StoredEvent(originator, v, "journal:Event", b"{}") for v in range(1, count + 1)]


class TestSQLiteJournal(EventStoreTestCase):
    def setUp(self) -> None:
        connection = connections[self.db_alias]
        if connection.vendor != "sqlite" or connection.is_in_memory_db():
            pytest.skip("a SQLite file database only")
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=DELETE")
            assert cursor.fetchone()[0].lower() == "delete"
        connection.close()
        self.path = connection.settings_dict["NAME"]

    def _mode(self) -> str:
        with closing(sqlite3.connect(self.path)) as other:
            return str(other.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def test_first_write_switches_a_file_database_to_wal(self) -> None:
        recorder = DjangoApplicationRecorder(f"journal_{uuid.uuid4().hex[:8]}", self.db_alias)

        assert recorder.insert_events(_events(1)) == [1]

        assert self._mode() == "wal"
        with closing(sqlite3.connect(self.path)) as other:
            (count,) = other.execute(
                "SELECT COUNT(*) FROM messaging_eventstore_stored_event WHERE application_name = ?",
                [recorder.application_name],
            ).fetchone()
        assert count == 1

    def test_first_use_inside_a_transaction_waits_for_the_next_call(self) -> None:
        recorder = DjangoApplicationRecorder(f"journal_{uuid.uuid4().hex[:8]}", self.db_alias)

        with transaction.atomic(using=self.db_alias):
            assert recorder.insert_events(_events(2)) == [1, 2]
        assert self._mode() == "delete"

        assert recorder.insert_events(_events(1)) == [3]
        assert self._mode() == "wal"

    def test_a_database_that_cannot_switch_keeps_its_journal_and_works(self) -> None:
        recorder = DjangoApplicationRecorder(f"journal_{uuid.uuid4().hex[:8]}", self.db_alias)
        connection = connections[self.db_alias]
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 100")
        with closing(sqlite3.connect(self.path)) as reader:
            # A reader in the middle of a transaction: the journal mode cannot change.
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM messaging_eventstore_stored_event").fetchone()
            with self.assertLogs("django_messaging.eventstore.dialects.sqlite", "WARNING"):
                assert recorder.select_notifications(1, 10) == []
            reader.rollback()
        assert self._mode() == "delete"
        connection.close()
