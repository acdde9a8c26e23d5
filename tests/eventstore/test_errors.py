"""Which failures a recorder call retries, against a real database behind a proxy."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import pytest
from django.db import connections
from eventsourcing.persistence import StoredEvent

from django_messaging.eventstore.recorders import DjangoApplicationRecorder
from tests.eventstore.base import EventStoreTestCase
from tests.proxy import TcpProxy


class _OnRetry(logging.Handler):
    """Runs ``action`` at the first retry the recorder logs; counts the retries."""

    def __init__(self, action: object) -> None:
        super().__init__(logging.WARNING)
        self.action = action
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.retries += 1
        if self.retries == 1:
            self.action()  # type: ignore[operator]


@contextmanager
def through(proxy: TcpProxy, alias: str) -> Iterator[None]:
    """Connections of ``alias`` (in this thread) reach the database through ``proxy``."""
    connection = connections[alias]
    saved = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=proxy.port)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


class TestRetries(EventStoreTestCase):
    databases: ClassVar = {"default", "eventstore"}
    db_alias = "eventstore"

    def test_a_database_that_refuses_connections_for_a_moment_is_waited_for(self) -> None:
        """While the database restarts, connections are refused; a call outside a transaction
        waits with the back-off and succeeds once the database is back, instead of failing at
        the first refusal."""
        settings = connections[self.db_alias].settings_dict
        if connections[self.db_alias].vendor == "sqlite":
            pytest.skip("SQLite has no server to lose")
        DjangoApplicationRecorder("refused", self.db_alias).insert_events(
            [StoredEvent(uuid.uuid4(), 1, "t", b"{}")]
        )
        proxy = TcpProxy((settings["HOST"], int(settings["PORT"]))).start()
        on_retry = _OnRetry(proxy.restore)
        errors_logger = logging.getLogger("django_messaging.eventstore.errors")
        errors_logger.addHandler(on_retry)
        try:
            with through(proxy, self.db_alias):
                proxy.cut()
                recorder = DjangoApplicationRecorder("refused", self.db_alias)
                assert recorder.max_notification_id() == 1
        finally:
            errors_logger.removeHandler(on_retry)
            proxy.stop()
        assert on_retry.retries == 1
