"""DCB appends and reads on one PostgreSQL server, two persistence modules:

* django-messaging (``django_messaging.eventstore``, Django + psycopg 3);
* eventsourcing's own DCB module for PostgreSQL (``eventsourcing.dcb.postgres_tt``, psycopg 3
  with its pool, appends as database functions).

Each variant builds its DCB recorder through ``DCBInfrastructureFactory.construct`` as a
``DCBApplication`` would, in its own database (created when missing, emptied before each run).
"""

from __future__ import annotations

import atexit
import sys
import time
import uuid
from typing import Any

from tests.benchmarks.harness import Scenario, Variant, emit

OURS = "django-messaging"
UPSTREAM = "eventsourcing.dcb.postgres_tt (psycopg)"
UPSTREAM_REQUIREMENTS = ["eventsourcing[postgres]==9.5.6", "psycopg[binary]>=3.2"]
APP = "BenchDCB"
DATA = b'{"flight": "LX318", "seat": "12A", "passenger": "ada", "at": "2026-12-06T04:00:00Z"}'


def _pg() -> dict[str, Any]:
    from tests import services

    parts = services.url_parts(services.POSTGRES_URL)
    return {
        "host": parts["host"],
        "port": int(parts["port"] or 5432),
        "user": parts["user"] or "postgres",
        "password": parts["password"] or "",
    }


def _database(prefix: str) -> dict[str, Any]:
    """A database of this variant process's own, dropped when the process exits."""
    import psycopg

    pg = _pg()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **pg) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **pg) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    return {**pg, "dbname": name}


def _ours() -> dict[str, str]:
    import django
    from django.conf import settings
    from django.core.management import call_command

    pg = _database("messaging_bench_dcb")
    settings.configure(
        INSTALLED_APPS=["django_messaging.core", "django_messaging.eventstore"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": pg["dbname"],
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
        cursor.execute(
            "TRUNCATE messaging_eventstore_dcb_event, messaging_eventstore_dcb_tag, "
            "messaging_eventstore_dcb_sequence"
        )
    return {"PERSISTENCE_MODULE": "django_messaging.eventstore"}


def _upstream() -> dict[str, str]:
    import psycopg

    pg = _database("messaging_bench_dcb_upstream")
    prefix = f"{APP.lower()}_events"
    with psycopg.connect(autocommit=True, **pg) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {prefix}_tt_tag, {prefix}_tt_main CASCADE")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.dcb.postgres_tt",
        "POSTGRES_DBNAME": pg["dbname"],
        "POSTGRES_HOST": pg["host"],
        "POSTGRES_PORT": str(pg["port"]),
        "POSTGRES_USER": pg["user"],
        "POSTGRES_PASSWORD": pg["password"],
    }


def recorder(key: str) -> Any:
    from eventsourcing.dcb.persistence import DCBInfrastructureFactory
    from eventsourcing.utils import Environment

    env = _ours() if key == "ours" else _upstream()
    return DCBInfrastructureFactory.construct(Environment(APP, env)).dcb_recorder()


def seat(number: int) -> Any:
    from eventsourcing.dcb.api import DCBQuery, DCBQueryItem

    return DCBQuery(items=[DCBQueryItem(types=["SeatBooked"], tags=[f"seat-{number}"])])


def booking(number: int) -> Any:
    from eventsourcing.dcb.api import DCBEvent

    return DCBEvent("SeatBooked", DATA, [f"seat-{number}", f"passenger-{number % 50}"])


def measure(key: str, workload: str) -> None:
    from eventsourcing.dcb.api import DCBAppendCondition

    rec = recorder(key)
    if workload == "decide":
        # Read the boundary, decide, append on condition: what a DCB command does.
        def decide(number: int) -> None:
            read = rec.read(seat(number))
            assert not list(read)
            rec.append([booking(number)], DCBAppendCondition(seat(number), after=read.head))

        for number in range(20):  # warm-up
            decide(number)
        started = time.perf_counter()
        for number in range(20, 320):
            decide(number)
        emit(300, time.perf_counter() - started)
    elif workload == "batch":
        for _ in range(5):
            rec.append([booking(n) for n in range(100)])
        batches = [[booking(n) for n in range(b * 100, b * 100 + 100)] for b in range(60)]
        started = time.perf_counter()
        for batch in batches:
            rec.append(batch)
        emit(60 * 100, time.perf_counter() - started)
    elif workload == "read":
        for block in range(20):
            rec.append([booking(n) for n in range(block * 100, block * 100 + 100)])
        passengers = [f"passenger-{n}" for n in range(50)]  # 40 events each
        from eventsourcing.dcb.api import DCBQuery, DCBQueryItem

        queries = [DCBQuery(items=[DCBQueryItem(tags=[p])]) for p in passengers]
        for query in queries[:10]:
            list(rec.read(query))
        started = time.perf_counter()
        for _ in range(4):
            for query in queries:
                assert len(list(rec.read(query))) == 40
        emit(4 * len(queries), time.perf_counter() - started)
    else:
        raise SystemExit(f"unknown workload {workload!r}")


def variants(workload: str) -> list[Variant]:
    return [
        Variant(OURS, [__file__, "ours", workload]),
        Variant(UPSTREAM, [__file__, "upstream", workload], requirements=UPSTREAM_REQUIREMENTS),
    ]


SCENARIOS = [
    Scenario(
        name="eventstore DCB: read, decide, conditional append (PostgreSQL)",
        unit="decisions/s",
        ours=OURS,
        variants=variants("decide"),
        note="300 cycles of read-by-tag plus a one-event append under its condition.",
    ),
    Scenario(
        name="eventstore DCB: unconditional 100-event appends (PostgreSQL)",
        unit="events/s",
        ours=OURS,
        variants=variants("batch"),
        note="60 appends of 100 events with two tags each, after 5 warm-up appends.",
    ),
    Scenario(
        name="eventstore DCB: reads by tag (PostgreSQL)",
        unit="reads/s",
        ours=OURS,
        variants=variants("read"),
        note="2,000 events; 50 tags of 40 events each, each read 4 times.",
    ),
]


if __name__ == "__main__":
    measure(sys.argv[1], sys.argv[2])
