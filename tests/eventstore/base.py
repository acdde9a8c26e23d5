"""What the event store's database tests share."""

from __future__ import annotations

import gc
import os
from typing import ClassVar

from django.db import connections
from django.test import TransactionTestCase

from django_messaging.core.worker import close_connections_and_pools

AVAILABLE_APPS = [
    "django_messaging.core",
    "django_messaging.eventstore",
    "tests.project.eventstore_app",
]


def close_other_connections(alias: str = "default") -> None:
    """End the sessions worker threads left open on the test database.

    Threads of the upstream concurrency cases each open a Django connection and never close
    it; PostgreSQL then refuses to drop the test database, and on MariaDB they pile up.
    Only sessions on this run's own test database are touched. A SQLite connection closes
    when it is garbage-collected: those of threads that have ended (a stopped runner's) are
    collected here, so that none keeps the file open into the next test (which may change its
    journal mode). Two passes: the first frees the Django connection objects, which releases
    the raw connections the SQLite dialect remembers; the second collects those.
    """
    connection = connections[alias]
    if connection.vendor == "sqlite":
        gc.collect()
        gc.collect()
    elif connection.vendor == "postgresql":
        # With Django's connection pool, the sessions ended here would be handed out again:
        # the pool is closed before (this query's connection is a new one) and after.
        pooled = bool(connection.settings_dict["OPTIONS"].get("pool"))
        if pooled:
            close_connections_and_pools()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        if pooled:
            close_connections_and_pools()
    elif connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
            for (pid,) in cursor.fetchall():
                try:
                    cursor.execute(f"KILL {int(pid)}")
                except Exception:  # already gone
                    pass


class EventStoreTestCase(TransactionTestCase):
    """Real commits, visible to other threads; the tables are emptied after each test."""

    available_apps = AVAILABLE_APPS
    databases: ClassVar = {"default"}
    db_alias = "default"

    def tearDown(self) -> None:
        close_other_connections(self.db_alias)
        super().tearDown()


class PersistenceEnv:
    """Puts ``PERSISTENCE_MODULE`` (and friends) in ``os.environ`` for one test."""

    env: ClassVar[dict[str, str]] = {"PERSISTENCE_MODULE": "django_messaging.eventstore"}

    def setUp(self) -> None:
        self._saved_env = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
