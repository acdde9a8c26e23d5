"""Subscriptions see events written by other processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from django.db import connections

from django_messaging.eventstore.recorders import DjangoApplicationRecorder
from tests.eventstore.base import EventStoreTestCase
from tests.eventstore.test_sync_followers import ROOT, subprocess_env

WRITER = """
import django, uuid
django.setup()
from eventsourcing.persistence import StoredEvent
from django_messaging.eventstore.recorders import DjangoApplicationRecorder
recorder = DjangoApplicationRecorder("crossprocess")
for _ in range(25):
    originator = uuid.uuid4()
    recorder.insert_events([StoredEvent(originator, v, "t", b"{}") for v in (1, 2)])
"""


class TestOtherProcesses(EventStoreTestCase):
    def test_subscription_receives_events_of_two_writer_processes(self) -> None:
        """On PostgreSQL the poll interval is 60 s here, so only ``NOTIFY`` can deliver the
        events in time; on SQLite and MariaDB the subscription polls every 0.2 s."""
        postgres = connections[self.db_alias].vendor == "postgresql"
        recorder = DjangoApplicationRecorder(
            "crossprocess", self.db_alias, poll_interval=60.0 if postgres else 0.2
        )
        received: list[int] = []
        errors: list[BaseException] = []

        def follow() -> None:
            try:
                with recorder.subscribe(gt=0) as subscription:
                    for notification in subscription:
                        received.append(notification.id)
                        if len(received) == 100:
                            break
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=follow)
        reader.start()
        env = {**subprocess_env(), "DJANGO_SETTINGS_MODULE": "tests.project.settings"}
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER], cwd=ROOT, env=env) for _ in range(2)
        ]
        started = time.monotonic()
        for writer in writers:
            assert writer.wait(timeout=120) == 0
        reader.join(timeout=30)
        assert not reader.is_alive(), f"received {len(received)} of 100"
        assert not errors, errors
        assert received == list(range(1, 101))
        assert time.monotonic() - started < 45
