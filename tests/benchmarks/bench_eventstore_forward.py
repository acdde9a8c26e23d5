"""Events out of the store to Kafka: ``manage.py forward_events`` against a raw loop.

An application's 50,500-event notification log on PostgreSQL (a database of the run's own) is
forwarded to a fresh one-partition Kafka topic:

* django-messaging: the ``forward_events`` command as its own process, with its defaults (pages
  of 500, JSON bodies decoded with the application's transcoder, the position recorded after
  each confirmed page); timed from the process start until the position is the last id, CPU
  time the child's (startup included);
* django-messaging ``--raw``: the same command forwarding the stored bytes unchanged;
* raw loop: a process that reads the log in pages of 500 with psycopg and produces each
  event's stored bytes with confluent-kafka (idempotent producer, flush per page), timed and
  counted the same way; it records no position and decodes nothing.

Every process starts from compiled bytecode, as an installed project does (written before the
timing starts, see :func:`tests.benchmarks.harness.compile_bytecode`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from tests.benchmarks.harness import Scenario, Target, Variant, cpu_so_far, emit, wait_for

AGGREGATES = 500
EVENTS_PER_AGGREGATE = 101  # one "Registered" and 100 "TrickAdded"
TOTAL = AGGREGATES * EVENTS_PER_AGGREGATE
PAGE = 500
OURS = "django-messaging forward_events"
OURS_RAW = "django-messaging forward_events --raw"
RAW = "raw loop (psycopg pages + confluent-kafka)"


def _database(name: str) -> dict[str, Any]:
    from tests.benchmarks.bench_outbox import existing_database

    return existing_database(name)


def _django(name: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django_messaging.core", "django_messaging.eventstore"],
        DATABASES={"default": _database(name)},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
        MESSAGING={
            "EVENTSTORE": {"PERSISTENCE_MODULE": "django_messaging.eventstore"},
            "KAFKA": {
                "GLOBAL_CONFIG": {"bootstrap.servers": os.environ["MESSAGING_KAFKA_BOOTSTRAP"]}
            },
        },
    )
    django.setup()


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class BenchForwardApp(Application[Any]):
    """The application the command forwards (``__main__.BenchForwardApp`` in the child)."""


def _fill(name: str) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    app = BenchForwardApp(env={"PERSISTENCE_MODULE": "django_messaging.eventstore"})
    for n in range(AGGREGATES):
        dog = Dog(f"dog {n}")
        for t in range(EVENTS_PER_AGGREGATE - 1):
            dog.add_trick(f"trick {t}")
        app.save(dog)
    assert app.recorder.max_notification_id() == TOTAL


def _topic(bootstrap: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-forward-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1)]).values():
        future.result(30)
    return name


def run(key: str, timing: str = "start") -> None:
    """The parent: a fresh database with the log, a fresh topic, the child timed from its
    start (``timing="start"``) or from its first page done (``"steady"``: startup left out)."""
    import psycopg

    from tests.benchmarks.bench_outbox import database_params, fresh_database

    name = f"bench_forward_{uuid.uuid4().hex[:10]}"
    fresh_database(name)
    try:
        _django(name)
        _fill(name)
        from django.db import connections

        connections.close_all()
        bootstrap = os.environ["MESSAGING_KAFKA_BOOTSTRAP"]
        topic = _topic(bootstrap)
        args = [sys.executable, __file__, "child", key, name, topic]
        with psycopg.connect(**{**database_params(), "dbname": name}, autocommit=True) as conn:
            started = time.perf_counter()
            child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ops = TOTAL
            cpu_before = 0.0
            if timing == "steady":
                wait_for(child, lambda: _first_page_done(conn, key), key)
                started, ops = time.perf_counter(), TOTAL - PAGE
                cpu_before = cpu_so_far(child.pid)
            wait_for(child, lambda: _done(conn, key), key)
            elapsed = time.perf_counter() - started
            child.send_signal(signal.SIGTERM)
            _, _, usage = os.wait4(child.pid, 0)
    finally:
        import psycopg as pg

        with pg.connect(**database_params(), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    cpu = usage.ru_utime + usage.ru_stime - cpu_before
    emit(ops, elapsed, cpu_seconds=cpu)


def _done(conn: Any, key: str) -> bool:
    if key == "raw":
        row = conn.execute("SELECT n FROM bench_raw_done").fetchone() if _has_done(conn) else None
        return row is not None and row[0] == TOTAL
    row = conn.execute(
        "SELECT notification_id FROM messaging_eventstore_tracking "
        "WHERE upstream_application_name = 'BenchForwardApp'"
    ).fetchone()
    return row is not None and row[0] == TOTAL


def _first_page_done(conn: Any, key: str) -> bool:
    if key == "raw":
        return conn.execute("SELECT to_regclass('bench_raw_first')").fetchone()[0] is not None
    row = conn.execute(
        "SELECT notification_id FROM messaging_eventstore_tracking "
        "WHERE upstream_application_name = 'BenchForwardApp'"
    ).fetchone()
    return row is not None and row[0] >= PAGE


def _has_done(conn: Any) -> bool:
    return conn.execute("SELECT to_regclass('bench_raw_done')").fetchone()[0] is not None


def child(key: str, name: str, topic: str) -> None:
    if key == "raw":
        _raw_loop(name, topic)
        return
    _django(name)
    from django.core.management import execute_from_command_line

    argv = ["manage.py", "forward_events", f"{__name__}.BenchForwardApp", "--kafka", topic]
    if key == "ours-raw":
        argv.append("--raw")
    execute_from_command_line(argv)


def _raw_loop(name: str, topic: str) -> None:
    """Read the log in pages, produce, wait for the page's delivery reports, go on."""
    import psycopg
    from confluent_kafka import Producer

    from tests.benchmarks.bench_outbox import database_params

    producer = Producer(
        {
            "bootstrap.servers": os.environ["MESSAGING_KAFKA_BOOTSTRAP"],
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    failed: list[Any] = []

    def report(error: Any, _msg: Any) -> None:
        if error is not None:
            failed.append(error)

    with psycopg.connect(**{**database_params(), "dbname": name}, autocommit=True) as conn:
        position, sent = 0, 0
        while sent < TOTAL:
            rows = conn.execute(
                "SELECT notification_id, originator_id, topic, state "
                "FROM messaging_eventstore_stored_event WHERE application_name = %s "
                "AND notification_id > %s ORDER BY notification_id LIMIT %s",
                ["BenchForwardApp", position, PAGE],
            ).fetchall()
            for nid, originator, event_topic, state in rows:
                producer.produce(
                    topic,
                    bytes(state),
                    str(originator).encode(),
                    headers=[("dop-msg-id", str(nid).encode()), ("topic", event_topic.encode())],
                    on_delivery=report,
                )
            producer.flush()
            assert not failed, failed
            if not position:  # tells the parent the first page is done
                conn.execute("CREATE TABLE bench_raw_first (n integer)")
            position, sent = rows[-1][0], sent + len(rows)
        conn.execute("CREATE TABLE bench_raw_done (n integer)")
        conn.execute("INSERT INTO bench_raw_done VALUES (%s)", [sent])
    signal.pause()  # until the parent's SIGTERM


_ALL_SCENARIOS = [
    Scenario(
        name="eventstore → Kafka: forward a 50,500-event notification log (PostgreSQL)",
        unit="events/s",
        ours=OURS,
        variants=[
            Variant(OURS, [__file__, "run", "ours"]),
            Variant(OURS_RAW, [__file__, "run", "ours-raw"]),
            Variant(RAW, [__file__, "run", "raw"]),
        ],
        targets=[Target(RAW, 0.5)],
        note="Each variant a process of its own, timed from its start to the last event "
        "confirmed by the broker (and, for the command, recorded as its position); pages of 500; "
        "one-partition topic on Tansu. The command's JSON bodies decode each event's state with "
        "the application's transcoder; `--raw` and the raw loop send the stored bytes. Every "
        "process starts from compiled bytecode (written before the run, as `pip install` does).",
    ),
    Scenario(
        name="eventstore → Kafka: forward_events running (from its first page on)",
        unit="events/s",
        ours=OURS,
        variants=[
            Variant(OURS, [__file__, "run", "ours", "steady"]),
            Variant(RAW, [__file__, "run", "raw", "steady"]),
        ],
        targets=[Target(RAW, 0.5)],
        note="Runs like the ones above, timed from the moment each process finished its first page (the "
        "command's position recorded, the raw loop's first page confirmed) to the last event: "
        "a long-running forwarder without its startup (Django, system checks, imports). CPU: "
        "the process's user + system time (all threads) from that moment on.",
    ),
]
#: ``BENCH_FORWARD_ONLY=running`` runs only the scenarios whose name mentions one of these.
_ONLY = [w for w in os.environ.get("BENCH_FORWARD_ONLY", "").split(",") if w]
SCENARIOS = [s for s in _ALL_SCENARIOS if not _ONLY or any(w in s.name for w in _ONLY)]

if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(*sys.argv[2:])
    else:
        child(*sys.argv[2:])
