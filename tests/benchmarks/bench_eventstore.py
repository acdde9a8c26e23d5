"""Event store writes and reads on one PostgreSQL server, three persistence modules:

* django-messaging (``django_messaging.eventstore``, Django + psycopg 3);
* eventsourcing-django 0.6 (its newest release, with eventsourcing 9.4 and Django 5.1, the
  newest versions it accepts);
* eventsourcing's own ``eventsourcing.postgres`` module (psycopg 3 with its pool).

Each variant builds its application recorder through ``InfrastructureFactory.construct`` as an
application would, in its own database (created when missing, emptied before each run).
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

from tests.benchmarks.harness import Scenario, Target, Variant, emit

OURS = "django-messaging"
REFERENCE = "eventsourcing-django 0.6"
UPSTREAM = "eventsourcing.postgres (psycopg)"
REFERENCE_REQUIREMENTS = [
    "eventsourcing-django==0.6",
    "eventsourcing==9.4.6",
    "Django>=5.1,<5.2",
    "psycopg[binary]>=3.2",
]
UPSTREAM_REQUIREMENTS = ["eventsourcing[postgres]==9.5.6", "psycopg[binary]>=3.2"]
APP = "BenchApp"


def _pg() -> dict[str, Any]:
    from tests import services

    parts = services.url_parts(services.POSTGRES_URL)
    return {
        "host": parts["host"],
        "port": int(parts["port"] or 5432),
        "user": parts["user"] or "postgres",
        "password": parts["password"] or "",
    }


def _database(name: str) -> dict[str, Any]:
    import psycopg

    pg = _pg()
    with psycopg.connect(dbname="postgres", autocommit=True, **pg) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return {**pg, "dbname": name}


def _django(app: str, dbname: str, tables: list[str]) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    pg = _database(dbname)
    settings.configure(
        INSTALLED_APPS=[app],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": dbname,
                "HOST": pg["host"],
                "PORT": pg["port"],
                "USER": pg["user"],
                "PASSWORD": pg["password"],
            }
        },
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)}")


def recorder(key: str) -> Any:
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.utils import Environment

    if key == "ours":
        _django(
            "django_messaging.eventstore",
            "messaging_bench_eventstore",
            [
                "messaging_eventstore_stored_event",
                "messaging_eventstore_sequence",
                "messaging_eventstore_aggregate_record",
                "messaging_eventstore_tracking",
            ],
        )
        env = {"PERSISTENCE_MODULE": "django_messaging.eventstore"}
    elif key == "reference":
        _django(
            "eventsourcing_django",
            "messaging_bench_esdjango",
            ["stored_events", "snapshots", "notification_tracking"],
        )
        env = {"PERSISTENCE_MODULE": "eventsourcing_django"}
    else:
        import psycopg

        pg = _database("messaging_bench_espostgres")
        with psycopg.connect(autocommit=True, **pg) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {APP.lower()}_events")
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": pg["dbname"],
            "POSTGRES_HOST": pg["host"],
            "POSTGRES_PORT": str(pg["port"]),
            "POSTGRES_USER": pg["user"],
            "POSTGRES_PASSWORD": pg["password"],
        }
    return InfrastructureFactory.construct(Environment(APP, env)).application_recorder()


def events(count: int, originator: uuid.UUID | None = None) -> list[Any]:
    from eventsourcing.persistence import StoredEvent

    originator = originator or uuid.uuid4()
    state = b'{"name": "Fido", "trick": "roll over", "timestamp": "2026-12-02T07:00:00+00:00"}'
    return [StoredEvent(originator, v, "bench:Dog.TrickAdded", state) for v in range(1, count + 1)]


def measure(key: str, workload: str) -> None:
    rec = recorder(key)
    if workload == "batch":
        for _ in range(5):  # warm-up
            rec.insert_events(events(100))
        batches = [events(100) for _ in range(60)]
        started = time.perf_counter()
        for batch in batches:
            rec.insert_events(batch)
        emit(60 * 100, time.perf_counter() - started)
    elif workload == "single":
        for _ in range(20):
            rec.insert_events(events(1))
        singles = [events(1) for _ in range(300)]
        started = time.perf_counter()
        for single in singles:
            rec.insert_events(single)
        emit(300, time.perf_counter() - started)
    elif workload == "read":
        originators = [uuid.uuid4() for _ in range(200)]
        for originator in originators:
            rec.insert_events(events(20, originator))
        for originator in originators[:20]:  # warm-up
            rec.select_events(originator)
        started = time.perf_counter()
        for _ in range(5):
            for originator in originators:
                assert len(rec.select_events(originator)) == 20
        emit(5 * len(originators), time.perf_counter() - started)
    else:
        raise SystemExit(f"unknown workload {workload!r}")


def variants(workload: str) -> list[Variant]:
    return [
        Variant(OURS, [__file__, "ours", workload]),
        Variant(REFERENCE, [__file__, "reference", workload], requirements=REFERENCE_REQUIREMENTS),
        Variant(UPSTREAM, [__file__, "upstream", workload], requirements=UPSTREAM_REQUIREMENTS),
    ]


SCENARIOS = [
    Scenario(
        name="eventstore: insert 100-event batches (application recorder, PostgreSQL)",
        unit="events/s",
        ours=OURS,
        variants=variants("batch"),
        targets=[Target(REFERENCE, 3.0), Target(UPSTREAM, 1 / 1.5)],
        note="60 batches of 100 events after 5 warm-up batches; one application, one thread.",
    ),
    Scenario(
        name="eventstore: single-event appends (application recorder, PostgreSQL)",
        unit="appends/s",
        ours=OURS,
        variants=variants("single"),
        targets=[Target(REFERENCE, 1.0)],
        note="300 transactions of one event each; each commit waits for the WAL flush.",
    ),
    Scenario(
        name="eventstore: aggregate reads (select_events of 20-event aggregates, PostgreSQL)",
        unit="reads/s",
        ours=OURS,
        variants=variants("read"),
        targets=[Target(REFERENCE, 1.0)],
        note="200 aggregates of 20 events, each read 5 times.",
    ),
]

if __name__ == "__main__":
    measure(sys.argv[1], sys.argv[2])
