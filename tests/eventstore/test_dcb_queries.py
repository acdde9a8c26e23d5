"""Queries by type and tag match exactly: case, accents and trailing spaces count.

MariaDB/MySQL compare ``VARCHAR`` columns case- and accent-insensitively by default (and
ignore trailing spaces); upstream's DCB recorders compare strings exactly, so the DCB tables
use a binary collation there.
"""

from __future__ import annotations

from eventsourcing.dcb.api import DCBAppendCondition, DCBEvent, DCBQuery, DCBQueryItem

from django_messaging.eventstore.dcb import DjangoDCBRecorder
from tests.eventstore.base import EventStoreTestCase


class TestExactMatching(EventStoreTestCase):
    def test_tags_types_and_application_names_match_exactly(self) -> None:
        recorder = DjangoDCBRecorder("Bookings", self.db_alias)
        recorder.append([DCBEvent("SeatBooked", b"ada", ["Seat-12A", "café"])])
        for near_miss in ("seat-12A", "Seat-12a", "Seat-12A ", "cafe"):
            query = DCBQuery(items=[DCBQueryItem(tags=[near_miss])])
            assert list(recorder.read(query)) == [], near_miss
            recorder.append([DCBEvent("Other", b"", [])], DCBAppendCondition(query))
        for near_miss in ("seatbooked", "SeatBooked "):
            query = DCBQuery(items=[DCBQueryItem(types=[near_miss])])
            assert list(recorder.read(query)) == [], near_miss
        exact = DCBQuery(items=[DCBQueryItem(types=["SeatBooked"], tags=["Seat-12A", "café"])])
        assert [e.event.data for e in recorder.read(exact)] == [b"ada"]

        other = DjangoDCBRecorder("bookings", self.db_alias)
        assert list(other.read()) == []
        assert other.append([DCBEvent("SeatBooked", b"bob", [])]) == 1
