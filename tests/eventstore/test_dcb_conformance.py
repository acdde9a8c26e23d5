"""The eventsourcing library's own DCB test cases, unmodified, against this module.

``DCBRecorderTestCase`` ships its checks as ``_test_append_read`` and
``_test_append_subscribe``; each subclass here runs both, on the ``default`` database of the
run (SQLite, PostgreSQL or MariaDB, from ``MESSAGING_TEST_DB``).
``test_upstream_case_guard.py`` fails if any of them is not collected.
"""

from __future__ import annotations

from typing import ClassVar

from eventsourcing.dcb.api import DCBEvent
from eventsourcing.dcb.persistence import DCBInfrastructureFactory
from eventsourcing.dcb.tests import DCBRecorderTestCase
from eventsourcing.tests.projection import TaggedDecisionCountersProjectionTestCase

from django_messaging.eventstore.dcb import DjangoDCBRecorder
from django_messaging.eventstore.factory import Factory
from tests.eventstore.base import EventStoreTestCase
from tests.project.eventstore_app.projections import DjangoEventCountersView


class TestDCBRecorder(EventStoreTestCase, DCBRecorderTestCase):
    def create_recorder(self) -> DjangoDCBRecorder:
        return DjangoDCBRecorder("dcb-app", self.db_alias, poll_interval=0.2)

    def test_append_read(self) -> None:
        self._test_append_read(self.create_recorder())

    def test_append_subscribe(self) -> None:
        self._test_append_subscribe(self.create_recorder())


class TestDCBRecorderNonEmptySequence(TestDCBRecorder):
    """The same cases with earlier events of this application (``initial_position``) and of
    another application in the tables."""

    def setUp(self) -> None:
        super().setUp()
        DjangoDCBRecorder("other-dcb-app", self.db_alias).append(
            [DCBEvent(type="type1", data=b"other", tags=["tagX", "tagA"]) for _ in range(3)]
        )
        self.create_recorder().append(
            [DCBEvent(type="earlier", data=b"earlier", tags=["earlier"]) for _ in range(5)]
        )

    def test_append_read(self) -> None:
        self._test_append_read(self.create_recorder(), initial_position=5)

    def test_append_subscribe(self) -> None:
        self._test_append_subscribe(self.create_recorder(), initial_position=5)


class TestTaggedDecisionCountersProjection(
    EventStoreTestCase, TaggedDecisionCountersProjectionTestCase
):
    """A ``DCBApplication`` on this module, projected into a Django view by ``ProjectionRunner``."""

    view_class = DjangoEventCountersView
    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": "django_messaging.eventstore",
        "MAPPER_TOPIC": "eventsourcing.dcb.msgpack:MessagePackMapper",
        "DJANGO_SUBSCRIPTION_POLL_INTERVAL": "0.2",
    }


class TestDCBFactory(EventStoreTestCase):
    def test_dcb_application_finds_the_recorder(self) -> None:
        factory = DCBInfrastructureFactory.construct(
            {"PERSISTENCE_MODULE": "django_messaging.eventstore", "DJANGO_DB_ALIAS": "default"}
        )
        assert isinstance(factory, Factory)
        recorder = factory.dcb_recorder()
        assert isinstance(recorder, DjangoDCBRecorder)
        assert recorder.using == self.db_alias


# Keep the upstream bases out of this module's namespace so only the subclasses are collected.
del DCBRecorderTestCase, TaggedDecisionCountersProjectionTestCase
