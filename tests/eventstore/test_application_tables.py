"""Applications with tables of their own (``DJANGO_TABLE_PREFIX``) and the migration operation
that creates them (``CreateApplicationTables``).

The test project's migration ``test_eventstore.0002`` creates the ``school`` tables, as a
project would; other prefixes are created and dropped by the tests themselves.
"""

from __future__ import annotations

import gc
import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.migrations.state import ProjectState
from django.test import override_settings
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.tests import persistence as upstream
from eventsourcing.utils import Environment

from django_messaging.core.checks import check_messaging_settings
from django_messaging.eventstore.factory import Factory
from django_messaging.eventstore.models import (
    AggregateRecord,
    NotificationTrackingRecord,
    StoredEventRecord,
)
from django_messaging.eventstore.operations import CreateApplicationTables
from django_messaging.eventstore.recorders import (
    DjangoApplicationRecorder,
    DjangoProcessRecorder,
)
from django_messaging.eventstore.tables import application_tables
from tests.eventstore.base import EventStoreTestCase
from tests.project.eventstore_app.domain import Dog, TrainingSchool

MODULE = "django_messaging.eventstore"
SCHOOL = application_tables("school")


def _count(table: str, alias: str = "default") -> int:
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
        return int(cursor.fetchone()[0])


class SchoolTables(EventStoreTestCase):
    """Empties the ``school`` tables after each test: they belong to no model, so the test
    case's flush does not reach them."""

    def tearDown(self) -> None:
        connection = connections[self.db_alias]
        with connection.cursor() as cursor:
            for table in (SCHOOL.events, SCHOOL.aggregate, SCHOOL.tracking):
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
        # The SQLite connections of the upstream cases' finished threads, in reference
        # cycles, would keep the database file open (and locked) for later tests.
        gc.collect()
        super().tearDown()


class TestOwnTables(SchoolTables):
    def test_events_snapshots_and_tracking_go_to_the_applications_own_tables(self) -> None:
        school = TrainingSchool(
            env={
                "PERSISTENCE_MODULE": MODULE,
                "IS_SNAPSHOTTING_ENABLED": "y",
                "TRAININGSCHOOL_DJANGO_TABLE_PREFIX": "school",  # this application only
            }
        )
        school.register("Fido")
        school.add_trick("Fido", "roll over")
        school.take_snapshot(Dog.create_id("Fido"))
        assert school.get_tricks("Fido") == ["roll over"]
        assert [n.id for n in school.notification_log.select(start=1, limit=10)] == [1, 2]
        assert (_count(SCHOOL.events), _count(SCHOOL.aggregate)) == (2, 1)
        assert not StoredEventRecord.objects.exists()
        assert not AggregateRecord.objects.exists()

        # Another application without the prefix keeps using the shared tables, with its own
        # notification ids from 1.
        other_recorder = DjangoApplicationRecorder("OtherSchool")
        other_recorder.insert_events([_event()])
        assert StoredEventRecord.objects.filter(application_name="OtherSchool").count() == 1
        assert _count(SCHOOL.events) == 2

        tracking = school.factory.tracking_recorder()
        tracking.insert_tracking(Tracking(notification_id=2, application_name="Upstream"))
        assert tracking.max_tracking_id("Upstream") == 2
        assert _count(SCHOOL.tracking) == 1
        assert not NotificationTrackingRecord.objects.exists()

    def test_the_prefix_from_the_settings_applies_to_every_application(self) -> None:
        with override_settings(MESSAGING={"EVENTSTORE": {"DJANGO_TABLE_PREFIX": "school"}}):
            from django_messaging.eventstore.conf import application_env

            env = application_env(PERSISTENCE_MODULE=MODULE)
        assert env["DJANGO_TABLE_PREFIX"] == "school"
        school = TrainingSchool(env=env)
        school.register("Rex")
        assert _count(SCHOOL.events) == 1
        assert not StoredEventRecord.objects.exists()

    def test_a_wrong_prefix_is_reported(self) -> None:
        for bad in ("School", "1st", "a-b", "x" * 41):
            with pytest.raises(OSError, match="DJANGO_TABLE_PREFIX"):
                Factory(Environment("App", {"DJANGO_TABLE_PREFIX": bad}))
        with override_settings(MESSAGING={"EVENTSTORE": {"DJANGO_TABLE_PREFIX": "Bad-Name"}}):
            text = "\n".join(m.msg for m in check_messaging_settings())
        assert "DJANGO_TABLE_PREFIX" in text and "lower-case" in text
        dcb = Factory(Environment("App", {"DJANGO_TABLE_PREFIX": "school"}))
        with pytest.raises(OSError, match="not supported for DCB"):
            dcb.dcb_recorder()


def _event(version: int = 1) -> StoredEvent:
    return StoredEvent(
        originator_id=uuid.uuid4(), originator_version=version, topic="topic", state=b"{}"
    )


class TestCreateApplicationTables(EventStoreTestCase):
    def test_forwards_creates_the_tables_and_backwards_drops_them(self) -> None:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        tables = application_tables(prefix)
        operation = CreateApplicationTables(prefix)
        connection = connections[self.db_alias]
        names = {tables.events, tables.aggregate, tables.tracking}
        with connection.schema_editor() as editor:
            operation.database_forwards("orders", editor, ProjectState(), ProjectState())
        try:
            assert names <= set(connection.introspection.table_names())
            recorder = DjangoApplicationRecorder("Orders", self.db_alias, tables=tables)
            first = _event()
            assert recorder.insert_events([first, _event()]) == [1, 2]
            # the shared tables' constraints came along: one version per originator
            with pytest.raises(IntegrityError):
                recorder.insert_events([first])
            assert _count(tables.events, self.db_alias) == 2
        finally:
            with connection.schema_editor() as editor:
                operation.database_backwards("orders", editor, ProjectState(), ProjectState())
        assert not names & set(connection.introspection.table_names())

    def test_the_operation_in_a_migration(self) -> None:
        """``migrate`` applied the test project's migration; ``sqlmigrate`` shows its SQL."""
        assert {SCHOOL.events, SCHOOL.aggregate, SCHOOL.tracking} <= set(
            connections[self.db_alias].introspection.table_names()
        )
        out = StringIO()
        call_command("sqlmigrate", "test_eventstore", "0002", stdout=out)
        sql = out.getvalue()
        for table in (SCHOOL.events, SCHOOL.aggregate, SCHOOL.tracking):
            assert table in sql
        operation = CreateApplicationTables("school")
        assert operation.deconstruct() == (
            "django_messaging.eventstore.operations.CreateApplicationTables",
            ["school"],
            {},
        )
        assert operation.migration_name_fragment == "school_event_tables"
        with pytest.raises(ValueError, match="lower-case"):
            CreateApplicationTables("Orders")


# The upstream recorder contracts, on the ``school`` tables.


class TestOwnTablesApplicationRecorder(SchoolTables, upstream.ApplicationRecorderTestCase):
    def create_recorder(self) -> ApplicationRecorder:
        return DjangoApplicationRecorder("app", self.db_alias, poll_interval=0.2, tables=SCHOOL)

    test_performance = None  # type: ignore[assignment]
    test_concurrent_throughput = None  # type: ignore[assignment]

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestOwnTablesProcessRecorder(SchoolTables, upstream.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return DjangoProcessRecorder("process", self.db_alias, tables=SCHOOL)

    test_performance = None  # type: ignore[assignment]


del upstream


def test_application_tables_names() -> None:
    tables: Any = application_tables("orders")
    assert (tables.events, tables.aggregate, tables.tracking) == (
        "orders_events",
        "orders_snapshots",
        "orders_tracking",
    )
    assert application_tables(None) == application_tables("")
    assert application_tables(None).events == StoredEventRecord._meta.db_table
