"""DCB subscriptions on PostgreSQL hear of appends by other processes at once (NOTIFY)."""

from __future__ import annotations

import multiprocessing
import threading

from django.db import connections
from eventsourcing.dcb.api import DCBEvent, DCBQuery, DCBQueryItem

from django_messaging.eventstore.dcb import DjangoDCBRecorder
from tests.eventstore.base import EventStoreTestCase
from tests.helpers import wait_until


def append_in_child(alias: str, application_name: str) -> None:
    try:
        DjangoDCBRecorder(application_name, alias).append([DCBEvent("Booked", b"ada", ["seat"])])
    finally:
        connections.close_all()


class TestSubscriptionAcrossProcesses(EventStoreTestCase):
    def test_an_append_by_another_process_arrives_long_before_the_next_poll(self) -> None:
        if connections[self.db_alias].vendor != "postgresql":
            self.skipTest(
                "only PostgreSQL announces appends; SQLite and MariaDB subscriptions poll"
            )
        recorder = DjangoDCBRecorder("dcb-listen", self.db_alias, poll_interval=60)
        query = DCBQuery(items=[DCBQueryItem(tags=["seat"])])
        with recorder.subscribe(query) as subscription:
            wait_until(lambda: self._listening(recorder.channel_name), what="the LISTEN session")
            received: list[int] = []
            reader = threading.Thread(target=lambda: received.append(next(subscription).position))
            reader.start()
            connections[self.db_alias].close()  # nothing open is shared with the child
            child = multiprocessing.get_context("fork").Process(
                target=append_in_child, args=(self.db_alias, "dcb-listen")
            )
            child.start()
            child.join(timeout=30)
            assert child.exitcode == 0
            wait_until(lambda: received, timeout=10, what="the event appended by the child")
            assert received == [1]
            reader.join(timeout=10)

    def _listening(self, channel: str) -> bool:
        with connections[self.db_alias].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query = %s",
                [f'LISTEN "{channel}"'],
            )
            return bool(cursor.fetchone()[0])
