"""Event store writes and reads, three persistence modules side by side, on PostgreSQL and SQLite:

* django-messaging (``django_messaging.eventstore``, Django + psycopg 3 / sqlite3);
* eventsourcing-django 0.6 (its newest release, with eventsourcing 9.4 and Django 5.1, the
  newest versions it accepts);
* eventsourcing's own ``eventsourcing.postgres`` (psycopg 3 with its pool) or
  ``eventsourcing.sqlite`` module.

Each variant builds its application recorder through ``InfrastructureFactory.construct`` as an
application would, with each module's documented defaults (Django's default database settings),
in a database of its own: a PostgreSQL database or a SQLite file named for this run, dropped
at the end. A variant reports wall and CPU time (``time.process_time``) of the measured loop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tests.benchmarks.harness import Scenario, Target, Variant, emit

OURS = "django-messaging"
REFERENCE = "eventsourcing-django 0.6"
UPSTREAM = {"postgres": "eventsourcing.postgres (psycopg)", "sqlite": "eventsourcing.sqlite"}
REFERENCE_REQUIREMENTS = [
    "eventsourcing-django==0.6",
    "eventsourcing==9.4.6",
    "Django>=5.1,<5.2",
    "psycopg[binary]>=3.2",
]
UPSTREAM_REQUIREMENTS = {
    "postgres": ["eventsourcing[postgres]==9.5.6", "psycopg[binary]>=3.2"],
    "sqlite": ["eventsourcing==9.5.6"],
}
APP = "BenchApp"
DJANGO_APPS = {"ours": "django_messaging.eventstore", "reference": "eventsourcing_django"}
#: Connection parameters of the PostgreSQL database the running variant uses.
_current_pg: dict[str, Any] = {}


def _pg() -> dict[str, Any]:
    from tests import services

    parts = services.url_parts(services.POSTGRES_URL)
    return {
        "host": parts["host"],
        "port": int(parts["port"] or 5432),
        "user": parts["user"] or "postgres",
        "password": parts["password"] or "",
    }


@contextlib.contextmanager
def _postgres_database() -> Iterator[dict[str, Any]]:
    """A PostgreSQL database of this run's own, dropped at the end."""
    import psycopg

    pg = _pg()
    name = f"messaging_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **pg) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**pg, "dbname": name}
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **pg) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _sqlite_file() -> Iterator[str]:
    """A SQLite file in a temporary folder of this run's own, removed at the end."""
    folder = tempfile.mkdtemp(prefix="messaging_bench_")
    try:
        yield os.path.join(folder, "events.sqlite3")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _django(app: str, database: dict[str, Any]) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        INSTALLED_APPS=[app],
        DATABASES={"default": database},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    call_command("migrate", verbosity=0)


def _close_django() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


@contextlib.contextmanager
def recorder(key: str, db: str) -> Iterator[Any]:
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    with contextlib.ExitStack() as stack:
        if db == "postgres":
            pg = stack.enter_context(_postgres_database())
            _current_pg.update(pg)
            database = {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": pg["dbname"],
                "HOST": pg["host"],
                "PORT": pg["port"],
                "USER": pg["user"],
                "PASSWORD": pg["password"],
            }
            upstream_env = {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": pg["dbname"],
                "POSTGRES_HOST": pg["host"],
                "POSTGRES_PORT": str(pg["port"]),
                "POSTGRES_USER": pg["user"],
                "POSTGRES_PASSWORD": pg["password"],
            }
        else:
            path = stack.enter_context(_sqlite_file())
            database = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
            upstream_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}
        stack.callback(_close_django)  # before the database goes
        if key in DJANGO_APPS:
            _django(DJANGO_APPS[key], database)
            env = {"PERSISTENCE_MODULE": DJANGO_APPS[key]}
        else:
            env = upstream_env
        factory = InfrastructureFactory.construct(Environment(APP, env))
        if hasattr(factory, "close"):
            stack.callback(factory.close)
        yield factory.application_recorder()


def events(count: int, originator: uuid.UUID | None = None) -> list[Any]:
    from eventsourcing.persistence import StoredEvent

    originator = originator or uuid.uuid4()
    state = b'{"name": "Fido", "trick": "roll over", "timestamp": "2026-12-02T07:00:00+00:00"}'
    return [StoredEvent(originator, v, "bench:Dog.TrickAdded", state) for v in range(1, count + 1)]


@contextlib.contextmanager
def timed(ops: int) -> Iterator[None]:
    cpu = time.process_time()
    started = time.perf_counter()
    yield
    emit(ops, time.perf_counter() - started, cpu_seconds=time.process_time() - cpu)


def _analyze() -> None:
    """What autovacuum does soon after a table's first writes: give the planner statistics."""
    import psycopg

    with psycopg.connect(autocommit=True, **_current_pg) as conn:
        conn.execute("ANALYZE")


def measure(key: str, db: str, workload: str) -> None:
    with recorder(key, db) as rec:
        if workload == "batch":
            for _ in range(5):  # warm-up
                rec.insert_events(events(100))
            batches = [events(100) for _ in range(60)]
            with timed(60 * 100):
                for batch in batches:
                    rec.insert_events(batch)
        elif workload == "single":
            for _ in range(20):
                rec.insert_events(events(1))
            singles = [events(1) for _ in range(300)]
            with timed(300):
                for single in singles:
                    rec.insert_events(single)
        elif workload == "read":
            originators = [uuid.uuid4() for _ in range(200)]
            for originator in originators:
                rec.insert_events(events(20, originator))
            for originator in originators[:20]:  # warm-up
                rec.select_events(originator)
            with timed(5 * len(originators)):
                for _ in range(5):
                    for originator in originators:
                        assert len(rec.select_events(originator)) == 20
        elif workload.startswith("notifications"):
            limit = int(workload.split("-")[1])
            for _ in range(50):
                rec.insert_events(events(100))
            if workload.endswith("-analyzed"):
                _analyze()
            first = rec.max_notification_id() - 5000 + 1
            for start in range(first, first + 1000, limit):  # warm-up
                rec.select_notifications(start, limit)
            pages = 3 * len(range(first, first + 5000, limit))
            with timed(pages):
                for _ in range(3):
                    for start in range(first, first + 5000, limit):
                        assert len(rec.select_notifications(start, limit)) == limit
        else:
            raise SystemExit(f"unknown workload {workload!r}")


def variants(db: str, workload: str) -> list[Variant]:
    return [
        Variant(OURS, [__file__, "ours", db, workload]),
        Variant(
            REFERENCE, [__file__, "reference", db, workload], requirements=REFERENCE_REQUIREMENTS
        ),
        Variant(
            UPSTREAM[db],
            [__file__, "upstream", db, workload],
            requirements=UPSTREAM_REQUIREMENTS[db],
        ),
    ]


LITE = "SQLite file with Django's default settings"

SCENARIOS = [
    Scenario(
        name="eventstore, PostgreSQL: insert 100-event batches (application recorder)",
        unit="events/s",
        ours=OURS,
        variants=variants("postgres", "batch"),
        targets=[Target(REFERENCE, 3.0), Target(UPSTREAM["postgres"], 1 / 1.5)],
        note="60 batches of 100 events after 5 warm-up batches; one application, one thread.",
    ),
    Scenario(
        name="eventstore, PostgreSQL: single-event appends (application recorder)",
        unit="appends/s",
        ours=OURS,
        variants=variants("postgres", "single"),
        targets=[Target(REFERENCE, 1.0)],
        note="300 transactions of one event each; each commit waits for the WAL flush.",
    ),
    Scenario(
        name="eventstore, PostgreSQL: aggregate reads (select_events of 20-event aggregates)",
        unit="reads/s",
        ours=OURS,
        variants=variants("postgres", "read"),
        targets=[Target(REFERENCE, 1.0)],
        note="200 aggregates of 20 events, each read 5 times.",
    ),
    Scenario(
        name="eventstore, PostgreSQL: notification selects in pages of 500",
        unit="selects/s",
        ours=OURS,
        variants=variants("postgres", "notifications-500"),
        targets=[Target(UPSTREAM["postgres"], 0.8)],
        note="A 5,000-event log read 3 times with select_notifications(start, 500), the page "
        "size of eventsourcing's subscriptions.",
    ),
    Scenario(
        name="eventstore, PostgreSQL: notification selects in pages of 10 (new tables)",
        unit="selects/s",
        ours=OURS,
        variants=variants("postgres", "notifications-10"),
        targets=[Target(UPSTREAM["postgres"], 0.8)],
        note="A 5,000-event log read 3 times with select_notifications(start, 10), the section "
        "size of an application's notification log, right after it was written: the planner has "
        "no statistics of the new tables yet.",
    ),
    Scenario(
        name="eventstore, PostgreSQL: notification selects in pages of 10, tables analyzed",
        unit="selects/s",
        ours=OURS,
        variants=variants("postgres", "notifications-10-analyzed"),
        targets=[Target(UPSTREAM["postgres"], 0.8)],
        note="As above, after an ANALYZE of the database (what autovacuum does within a minute "
        "of a table's first writes): the steady state of a log that is read while it grows.",
    ),
    Scenario(
        name=f"eventstore, {LITE}: insert 100-event batches (application recorder)",
        unit="events/s",
        ours=OURS,
        variants=variants("sqlite", "batch"),
        targets=[Target(REFERENCE, 1.0), Target(UPSTREAM["sqlite"], 0.8)],
        note="60 batches of 100 events after 5 warm-up batches; one application, one thread.",
    ),
    Scenario(
        name=f"eventstore, {LITE}: single-event appends (application recorder)",
        unit="appends/s",
        ours=OURS,
        variants=variants("sqlite", "single"),
        targets=[Target(REFERENCE, 1.0)],
        note="300 transactions of one event each.",
    ),
    Scenario(
        name=f"eventstore, {LITE}: notification selects in pages of 500",
        unit="selects/s",
        ours=OURS,
        variants=variants("sqlite", "notifications-500"),
        note="A 5,000-event log read 3 times with select_notifications(start, 500).",
    ),
]

if __name__ == "__main__":
    measure(sys.argv[1], sys.argv[2], sys.argv[3])
