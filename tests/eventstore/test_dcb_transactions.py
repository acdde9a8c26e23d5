"""DCB appends join a caller's transaction: they commit and roll back with it, leaving no gap."""

from __future__ import annotations

import pytest
from django.db import transaction
from eventsourcing.dcb.api import DCBEvent

from django_messaging.eventstore.dcb import DjangoDCBRecorder
from tests.eventstore.base import EventStoreTestCase


class Rollback(Exception):
    pass


class TestCallersTransaction(EventStoreTestCase):
    def test_a_rolled_back_append_leaves_no_trace_and_no_gap(self) -> None:
        recorder = DjangoDCBRecorder("dcb-tx", self.db_alias)
        with pytest.raises(Rollback), transaction.atomic(using=self.db_alias):
            assert recorder.append([DCBEvent("Booked", b"ada", ["seat-1"])]) == 1
            assert [e.position for e in recorder.read()] == [1]
            raise Rollback
        assert list(recorder.read()) == []
        assert recorder.append([DCBEvent("Booked", b"bob", ["seat-1"])]) == 1
        with transaction.atomic(using=self.db_alias):
            assert recorder.append([DCBEvent("Booked", b"eve", ["seat-2"])]) == 2
        assert [e.event.data for e in recorder.read()] == [b"bob", b"eve"]

    def test_empty_appends_are_refused(self) -> None:
        from eventsourcing.persistence import ProgrammingError

        with pytest.raises(ProgrammingError):
            DjangoDCBRecorder("dcb-tx", self.db_alias).append([])
