"""The README's examples, run as written.

Blocks whose first line names a project file (``# settings.py``, ``# .../apps.py``) belong in
a Django project and are mirrored by ``tests/project``; every other Python block runs here,
in order, in one module namespace.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest
from django.conf import settings
from django.test import override_settings

from tests.eventstore.base import EventStoreTestCase

README = Path(__file__).resolve().parents[2] / "packages" / "eventstore" / "README.md"
FILE_COMMENT = re.compile(r"^# [\w/.]+\.py\s*$")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


class TestReadme(EventStoreTestCase):
    databases: ClassVar = {"default", "eventstore"}

    @pytest.fixture(autouse=True)
    def _kafka(self, kafka_bootstrap: str) -> None:
        """The forwarder example sends to Kafka: MESSAGING["KAFKA"] names the test broker
        (also where the kafka package is not installed)."""
        self.kafka_settings = override_settings(
            MESSAGING={
                **settings.MESSAGING,
                "KAFKA": {"GLOBAL_CONFIG": {"bootstrap.servers": kafka_bootstrap}},
            }
        )

    def test_examples_run(self) -> None:
        blocks = python_blocks()
        runnable = [b for b in blocks if not FILE_COMMENT.match(b.splitlines()[0])]
        assert len(runnable) >= 4, "the README lost its runnable examples"
        module = types.ModuleType("readme_examples")
        sys.modules[module.__name__] = module  # event topics resolve to this module
        try:
            with self.kafka_settings:
                for block in runnable:
                    exec(compile(block, str(README), "exec"), module.__dict__)
            school = module.__dict__["training_school"]
            assert school.recorder.using == "eventstore"
            forwarder = module.__dict__["forwarder"]
            assert forwarder.position == school.recorder.max_notification_id()
            assert forwarder.forwarded == forwarder.position > 0
            school.register("Rex")
            assert school.get_tricks("Rex") == []
            namespace = module.__dict__
            assert namespace["ada_position"] == 1
            assert namespace["eve_was_refused"] is True
            bookings = namespace["bookings"]
            seat_14c = namespace["FlightBookings"].seat("LX318", "14C")
            assert [e.event.data for e in bookings.recorder.read(seat_14c)] == [b"bob"]
            with pytest.raises(namespace["SeatTakenError"]):
                bookings.book("LX318", "12A", "eve")
        finally:
            del sys.modules[module.__name__]
