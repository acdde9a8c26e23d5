"""The eventsourcing library's own persistence test cases, unmodified, against this module.

Each upstream case class gets one concrete subclass here, bound to the ``default`` database
of the run (SQLite, PostgreSQL or MariaDB, from ``MESSAGING_TEST_DB``).
``test_upstream_case_guard.py`` fails if any of them is not collected.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import connections
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests import persistence as upstream
from eventsourcing.tests.application import ApplicationTestCase, ExampleApplicationTestCase
from eventsourcing.tests.projection import (
    AggregateEventCountersProjectionTestCase,
    EventCountersView,
    EventCountersViewTestCase,
    EventSourcedProjectionTestCase,
)
from eventsourcing.utils import Environment

from django_messaging.eventstore.factory import Factory
from django_messaging.eventstore.recorders import (
    DjangoAggregateRecorder,
    DjangoApplicationRecorder,
    DjangoProcessRecorder,
    DjangoTrackingRecorder,
)
from tests.eventstore.base import EventStoreTestCase, PersistenceEnv
from tests.project.eventstore_app.projections import DjangoEventCountersView


class TestSnapshotRecorder(EventStoreTestCase, upstream.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return DjangoAggregateRecorder("app", self.db_alias, purpose="snapshots")


class TestAggregateRecorderOtherPurpose(EventStoreTestCase, upstream.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return DjangoAggregateRecorder("app", self.db_alias, purpose="events")


class TestApplicationRecorder(EventStoreTestCase, upstream.ApplicationRecorderTestCase):
    def create_recorder(self) -> ApplicationRecorder:
        return DjangoApplicationRecorder("app", self.db_alias, poll_interval=0.2)

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestApplicationRecorderNonEmptyLog(EventStoreTestCase, upstream.ApplicationRecorderTestCase):
    """The concurrency and subscription cases again, with another application's events and
    earlier events of this application already in the table (``initial_position``)."""

    def setUp(self) -> None:
        super().setUp()
        from eventsourcing.persistence import StoredEvent

        for name in ("other-app", "app"):
            DjangoApplicationRecorder(name, self.db_alias).insert_events(
                [
                    StoredEvent(
                        originator_id=self.new_originator_id(),
                        originator_version=1,
                        topic="earlier",
                        state=b"{}",
                    )
                    for _ in range(5)
                ]
            )

    def create_recorder(self) -> ApplicationRecorder:
        return DjangoApplicationRecorder("app", self.db_alias, poll_interval=0.2)

    # Not repeated here: test_insert_select needs ids from 1 (TestApplicationRecorder runs
    # it); the timings are TestApplicationRecorder's.
    test_insert_select = None  # type: ignore[assignment]
    test_performance = None  # type: ignore[assignment]
    test_concurrent_throughput = None  # type: ignore[assignment]

    def test_concurrent_no_conflicts(self) -> None:
        super().test_concurrent_no_conflicts(initial_position=5)

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe(initial_position=5)


class TestTextOriginatorIds(EventStoreTestCase, upstream.ApplicationRecorderTestCase):
    """``ORIGINATOR_ID_TYPE=text``: string aggregate ids, as upstream 9.5 supports."""

    def new_originator_id(self) -> str:
        from uuid import uuid4

        return f"order-{uuid4()}"

    def create_recorder(self) -> ApplicationRecorder:
        return DjangoApplicationRecorder("app", self.db_alias, originator_id_type="text")

    # The timings and the concurrency cases do not depend on the id type; they run once, in
    # TestApplicationRecorder.
    test_performance = None  # type: ignore[assignment]
    test_concurrent_throughput = None  # type: ignore[assignment]
    test_concurrent_no_conflicts = None  # type: ignore[assignment]


class TestTrackingRecorder(EventStoreTestCase, upstream.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return DjangoTrackingRecorder("view", self.db_alias)


class TestProcessRecorderAsTrackingRecorder(EventStoreTestCase, upstream.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return DjangoProcessRecorder("process", self.db_alias)


class TestProcessRecorder(EventStoreTestCase, upstream.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return DjangoProcessRecorder("process", self.db_alias)


class TestNonInterleavingNotificationIds(
    EventStoreTestCase, upstream.NonInterleavingNotificationIDsBaseCase
):
    insert_num = 1000

    def create_recorder(self) -> ApplicationRecorder:
        return DjangoApplicationRecorder("app", self.db_alias)


class SubTrackingRecorder(DjangoTrackingRecorder):
    pass


class TestFactory(EventStoreTestCase, upstream.InfrastructureFactoryTestCase[Factory]):
    def setUp(self) -> None:
        self.env = Environment("TestCase")
        self.env[Factory.PERSISTENCE_MODULE] = "django_messaging.eventstore"
        self.env[Factory.DJANGO_DB_ALIAS] = self.db_alias
        super().setUp()

    def expected_factory_class(self) -> type[Factory]:
        return Factory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return DjangoAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return DjangoApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return DjangoTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return SubTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return DjangoProcessRecorder


class TestExampleApplication(PersistenceEnv, EventStoreTestCase, ExampleApplicationTestCase):
    expected_factory_topic = "django_messaging.eventstore.factory:Factory"


class TestEventCountersView(EventStoreTestCase, EventCountersViewTestCase):
    def construct_event_counters_view(self) -> EventCountersView:
        return DjangoEventCountersView("eventcounters", self.db_alias)


class TestEventCountersProjection(EventStoreTestCase, AggregateEventCountersProjectionTestCase):
    view_class = DjangoEventCountersView
    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": "django_messaging.eventstore",
        "DJANGO_SUBSCRIPTION_POLL_INTERVAL": "0.2",
    }


# The upstream base classes are abstract; keep them out of this module's namespace so the
# collector sees only the concrete subclasses above.
del upstream
del ExampleApplicationTestCase, EventCountersViewTestCase, AggregateEventCountersProjectionTestCase


class TestEventSourcedProjection(EventStoreTestCase, EventSourcedProjectionTestCase):
    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": "django_messaging.eventstore",
        "DJANGO_SUBSCRIPTION_POLL_INTERVAL": "0.2",
    }


class TestApplication(PersistenceEnv, EventStoreTestCase, ApplicationTestCase):
    """The generic application cases, with this module as the persistence module."""

    def _check_aggregate_fastforwarding_during_contention(self, env: Any) -> None:
        if connections[self.db_alias].vendor == "postgresql":
            self.skipTest(
                "100 threads write at once, and Django gives each thread its own connection; "
                "PostgreSQL's default max_connections is 100 (SQLite and MariaDB run it)"
            )
        super()._check_aggregate_fastforwarding_during_contention(env)


del EventSourcedProjectionTestCase, ApplicationTestCase
