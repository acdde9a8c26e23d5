"""Fixtures of the Kafka Connect tests: a local Connect REST API and settings pointing at it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_messaging.kafka import kafka
from tests.kafka.connect.connect_server import FakeConnect

#: Retries without long back-off sleeps, so failure tests stay fast.
FAST_RETRY = {
    "connect": 2,
    "read": 2,
    "status": 3,
    "backoff_factor": 0.01,
    "status_forcelist": [502, 503, 504],
}


@pytest.fixture
def connect_server() -> Iterator[FakeConnect]:
    server = FakeConnect().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def connect_settings(settings: Any, connect_server: FakeConnect) -> Callable[..., dict[str, Any]]:
    """``connect_settings(**keys)``: MESSAGING['KAFKA'] pointing at the local Connect."""

    def apply(**keys: Any) -> dict[str, Any]:
        messaging = copy.deepcopy(settings.MESSAGING)
        kafka_section = messaging.setdefault("KAFKA", {})
        kafka_section.update(
            {
                "CONNECT_HOST": connect_server.url,
                "CONNECT_RETRY": dict(FAST_RETRY),
                "CONNECT_REQUESTS_TIMEOUT": 5,
            }
        )
        kafka_section.update(keys)
        settings.MESSAGING = messaging
        return kafka_section

    apply()
    return apply


@pytest.fixture
def register_connector(monkeypatch: pytest.MonkeyPatch) -> Callable[[type], type]:
    """An empty connector registry for one test; ``register_connector(cls)`` adds to it.

    The project's own connectors (``tests/project/kafka_app/connectors.py``) are hidden meanwhile
    and come back after the test.
    """
    monkeypatch.setattr(kafka.connectors, "_classes", {})

    def register(cls: type) -> type:
        kafka.connectors.register(cls)
        return cls

    return register
