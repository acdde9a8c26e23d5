"""Outbox: relay throughput, ``@publish`` save overhead and subscriber throughput, against
django-outbox-pattern 0.9.0 and 3.2.1 and raw stomp.py, on PostgreSQL and RabbitMQ STOMP.

Each variant runs in a fresh process with its own fresh PostgreSQL database; the reference
libraries run in their own virtualenvs. Only the work itself is timed (setup, migrations and
pre-loading are not).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import unquote, urlsplit

from tests.benchmarks.harness import (
    OBSERVABILITY_NOTE,
    OBSERVED,
    Scenario,
    Target,
    Variant,
    cpu_so_far,
    emit,
    enable_observability,
    wait_for,
)

RELAY_ROWS = 3000
#: The Kafka relay scenario: enough rows that the relay's throughput, not its start, is timed.
KAFKA_RELAY_ROWS = 20000
#: The relay's default batch (DEFAULT_PUBLISHED_CHUNK_SIZE): the "running" clock starts after it.
FIRST_BATCH = 500
RELAY_BODY = {"id": 1, "name": "a product name", "price": "10.50", "tags": ["a", "b"]}
SAVES = 2000
SUBSCRIBER_MESSAGES = 1000

REF_090 = ["django-outbox-pattern==0.9.0", "Django>=4.2,<5", "psycopg[binary]>=3.1"]
REF_321 = ["django-outbox-pattern==3.2.1", "Django>=5.2,<5.3", "psycopg[binary]>=3.1"]
RAW = ["stomp.py>=8.1,<9"]


def stomp_address() -> tuple[str, int]:
    host, _, port = os.environ.get("MESSAGING_STOMP_ADDRESS", "127.0.0.1:61613").rpartition(":")
    return host or "127.0.0.1", int(port)


def database_params() -> dict:
    url = urlsplit(
        os.environ.get("MESSAGING_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    )
    return {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 5432,
        "user": unquote(url.username or "postgres"),
        "password": unquote(url.password or ""),
        "dbname": url.path.lstrip("/") or "postgres",
    }


def fresh_database(name: str) -> dict:
    import psycopg

    params = database_params()
    with psycopg.connect(autocommit=True, **params) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    return existing_database(name)


def existing_database(name: str) -> dict:
    params = database_params()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": params["user"],
        "PASSWORD": params["password"],
        "HOST": params["host"],
        "PORT": params["port"],
    }


def setup_django(
    kind: str, key: str, *, fresh: bool = True, conn_max_age: float | None = 0
) -> None:
    import django
    from django.conf import settings

    host, port = stomp_address()
    extra: dict = {}
    if kind == "ours":
        apps = ["django_messaging.core", "django_messaging.outbox"]
        extra["MESSAGING"] = {
            "OUTBOX": {
                "DEFAULT_STOMP_HOST_AND_PORTS": [(host, port)],
                "DEFAULT_PRODUCER_WAITING_TIME": 0.05,
            }
        }
    else:
        apps = ["django_outbox_pattern"]
        extra["DJANGO_OUTBOX_PATTERN"] = {
            "DEFAULT_STOMP_HOST_AND_PORTS": [(host, port)],
            "DEFAULT_PRODUCER_WAITING_TIME": 0,
        }
    # BENCH_OUTBOX_DB_PREFIX: runs side by side on one server keep to their own databases
    name = f"{os.environ.get('BENCH_OUTBOX_DB_PREFIX', 'bench_outbox')}_{key}"
    database = fresh_database(name) if fresh else existing_database(name)
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", *apps],
        DATABASES={"default": {**database, "CONN_MAX_AGE": conn_max_age}},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
        **extra,
    )
    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def declare_durable_queue(destination: str, queue: str) -> None:
    """Bind a durable queue so persistent messages are really stored (as in production)."""
    import stomp

    done = threading.Event()

    class Listener(stomp.ConnectionListener):
        def on_receipt(self, frame):
            done.set()

    conn = stomp.Connection12([stomp_address()], vhost="/")
    conn.set_listener("l", Listener())
    conn.connect("guest", "guest", wait=True)
    conn.subscribe(
        destination,
        "decl",
        headers={"x-queue-name": queue, "durable": "true", "auto-delete": "false", "receipt": "r"},
    )
    done.wait(10)
    conn.unsubscribe("decl")
    conn.disconnect()


def delete_queues(*names: str) -> None:
    for name in names:
        subprocess.run(
            ["rabbitmqctl", "delete_queue", name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )


# --- relay --------------------------------------------------------------------------------


def relay(key: str) -> None:
    destination = f"/topic/bench_relay_{key}_{uuid.uuid4().hex[:6]}"
    queue = f"bench-relay-{key}-{uuid.uuid4().hex[:6]}"
    declare_durable_queue(destination, queue)
    try:
        cpu = None
        if key == "raw":
            elapsed = _raw_send(destination, RELAY_ROWS)
        else:
            setup_django("ours" if key.startswith("ours") else "ref", key)
            if key.removeprefix("ours-") in OBSERVED:
                enable_observability(key.removeprefix("ours-"))
            if key == "ours-sampled":
                enable_observability("observed")
            elapsed, cpu = _relay_django(key, destination)
    finally:
        delete_queues(queue)
    emit(RELAY_ROWS, elapsed, cpu)


def _relay_django(key: str, destination: str) -> tuple[float, float]:
    """Wall and process CPU seconds of the relaying alone (not the rows' insert)."""
    body = {"id": 1, "name": "a product name", "price": "10.50", "tags": ["a", "b"]}
    if key.startswith("ours"):
        from django_messaging.outbox.models import Published
        from django_messaging.outbox.relay import Relay

        def headers() -> dict[str, str]:
            if key != "ours-sampled":
                return {}
            # written under a sampled span: the relay makes a send span per row
            return {"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"}

        Published.objects.bulk_create(
            Published(destination=destination, body={**body, "n": i}, headers=headers())
            for i in range(RELAY_ROWS)
        )
        started, cpu = time.perf_counter(), time.process_time()
        worker = Relay()
        worker.start()
        while worker.sent < RELAY_ROWS:
            worker.run_once()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        worker.stop()
        assert Published.objects.filter(status=2).count() == RELAY_ROWS
        return elapsed, cpu
    from django_outbox_pattern.choices import StatusChoice
    from django_outbox_pattern.models import Published

    Published.objects.bulk_create(
        Published(destination=destination, body={**body, "n": i}) for i in range(RELAY_ROWS)
    )
    started, cpu = time.perf_counter(), time.process_time()
    if key == "v090":  # one pass of the 0.9.0 command loop, as coded
        from django_outbox_pattern.factories import factory_producer

        producer = factory_producer()
        producer.start()
        for message in Published.objects.filter(status=StatusChoice.SCHEDULE):
            attempts = producer.send(message)
            message.retry = attempts
            message.status = StatusChoice.SUCCEEDED
            message.save()
        producer.stop()
    else:  # one pass of the 3.2.1 relay (its waiting time set to 0)
        from django_outbox_pattern.factories import factory_producer

        factory_producer().publish_message_from_database()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert Published.objects.filter(status=StatusChoice.SUCCEEDED).count() == RELAY_ROWS
    return elapsed, cpu


def _raw_send(destination: str, count: int) -> float:
    """stomp.py alone: persistent SENDs with receipts, written back to back, all confirmed."""
    import stomp

    body = json.dumps({"id": 1, "name": "a product name", "price": "10.50", "tags": ["a", "b"]})
    done = threading.Event()
    receipts: set[str] = set()

    class Listener(stomp.ConnectionListener):
        def on_receipt(self, frame):
            receipts.add(frame.headers["receipt-id"])
            if len(receipts) == count:
                done.set()

    started = time.perf_counter()
    conn = stomp.Connection12([stomp_address()], vhost="/")
    conn.set_listener("l", Listener())
    conn.connect("guest", "guest", wait=True)
    for i in range(count):
        conn.send(
            destination,
            body,
            content_type="application/json",
            headers={"persistent": "true", "receipt": f"r{i}", "dop-msg-id": str(uuid.uuid4())},
        )
    if not done.wait(120):
        raise RuntimeError(f"only {len(receipts)} receipts")
    elapsed = time.perf_counter() - started
    conn.disconnect()
    return elapsed


def relay_command(key: str, timing: str = "start") -> None:
    """``manage.py publish`` as its own process relaying KAFKA_RELAY_ROWS rows (``ours-kafka``:
    to a Kafka topic; ``ours``: to a STOMP destination bound to a durable queue), or a raw
    confluent-kafka process producing the same bodies (``raw-kafka``). Timed by this parent from
    the process start (``timing="start"``) or from the first batch done (``"steady"``) to the
    last row marked sent (the raw process: to its last delivery report)."""
    import psycopg

    kafka = key != "ours"
    queue = None
    if kafka:
        from confluent_kafka.admin import AdminClient, NewTopic

        destination = f"bench-outbox-{key}-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": os.environ["MESSAGING_KAFKA_BOOTSTRAP"]})
        for future in admin.create_topics([NewTopic(destination, 1)]).values():
            future.result(10)
    else:
        destination = f"/topic/bench_relay_{key}_{uuid.uuid4().hex[:6]}"
        queue = f"bench-relay-{key}-{uuid.uuid4().hex[:6]}"
        declare_durable_queue(destination, queue)
    try:
        setup_django("ours", key)
        from django.db import connection, connections

        from django_messaging.outbox.models import Published

        transport = {"transport": "kafka"} if kafka else {}
        rows = Published.objects.bulk_create(
            Published(destination=destination, body={**RELAY_BODY, "n": i}, **transport)
            for i in range(KAFKA_RELAY_ROWS)
        )
        first, last = rows[FIRST_BATCH - 1].pk, rows[-1].pk
        dbname = connection.settings_dict["NAME"]
        connections.close_all()
        args = [sys.executable, __file__, "relay-child", key, destination]
        with psycopg.connect(**{**database_params(), "dbname": dbname}, autocommit=True) as conn:

            def sent(pk: object) -> bool:
                if key == "raw-kafka":
                    return False
                row = conn.execute(
                    "SELECT status FROM messaging_outbox_published WHERE id = %s", [pk]
                ).fetchone()
                return row is not None and row[0] == 2

            started = time.perf_counter()
            child = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            ops, cpu_before = KAFKA_RELAY_ROWS, 0.0
            if timing == "steady":
                if key == "raw-kafka":
                    child.stdout.readline()  # "first": its first FIRST_BATCH reports are in
                else:
                    wait_for(child, lambda: sent(first), key)
                started, ops = time.perf_counter(), KAFKA_RELAY_ROWS - FIRST_BATCH
                cpu_before = cpu_so_far(child.pid)
            if key == "raw-kafka":
                child.stdout.read()  # to its exit, after the last report
                elapsed = time.perf_counter() - started
                _, _, usage = os.wait4(child.pid, 0)
            else:
                wait_for(child, lambda: sent(last), key)
                elapsed = time.perf_counter() - started
                child.send_signal(signal.SIGTERM)
                _, _, usage = os.wait4(child.pid, 0)
                done = conn.execute(
                    "SELECT count(*) FROM messaging_outbox_published WHERE status = 2"
                ).fetchone()[0]
                assert done == KAFKA_RELAY_ROWS, done
    finally:
        if queue is not None:
            delete_queues(queue)
    emit(ops, elapsed, cpu_seconds=usage.ru_utime + usage.ru_stime - cpu_before)


def relay_child(key: str, destination: str) -> None:
    if key == "raw-kafka":
        _raw_kafka(destination)
        return
    setup_django("ours", key, fresh=False)
    command = ["manage.py", "publish"]
    if key == "ours-kafka":
        from django.conf import settings

        bootstrap = os.environ["MESSAGING_KAFKA_BOOTSTRAP"]
        settings.MESSAGING["OUTBOX"]["TRANSPORTS"] = {
            "kafka": {"BACKEND": "kafka", "OPTIONS": {"bootstrap.servers": bootstrap}}
        }
        command += ["--transport", "kafka"]
    from django.core.management import execute_from_command_line

    execute_from_command_line(command)


def _raw_kafka(topic: str) -> None:
    """One idempotent producer (linger.ms 5, as the transport's), every body produced with its
    message id header and every delivery report awaited."""
    from confluent_kafka import Producer

    delivered: list[object] = []

    def report(error: object, _msg: object) -> None:
        delivered.append(error)
        if len(delivered) == FIRST_BATCH:
            print("first", flush=True)

    producer = Producer(
        {
            "bootstrap.servers": os.environ["MESSAGING_KAFKA_BOOTSTRAP"],
            "linger.ms": 5,
            "enable.idempotence": True,
        }
    )
    for i in range(KAFKA_RELAY_ROWS):
        producer.produce(
            topic,
            json.dumps({**RELAY_BODY, "n": i}).encode(),
            headers=[("dop-msg-id", str(uuid.uuid4()).encode())],
            on_delivery=report,
        )
        producer.poll(0)
    producer.flush(60)
    assert len(delivered) == KAFKA_RELAY_ROWS and not any(delivered)


# --- @publish save overhead -----------------------------------------------------------------


def save(key: str) -> None:
    key, _, mode = key.partition("-")
    setup_django("ref" if key.startswith("v") else "ours", f"save_{key}_{mode or 'auto'}")
    from django.db import connection, models

    class BenchItem(models.Model):
        field_one = models.CharField(max_length=100)
        field_two = models.CharField(max_length=100)

        class Meta:
            app_label = "auth"

    if key == "ours":
        from django_messaging.outbox.decorators import Config, publish

        publish([Config(destination="/topic/bench_save")])(BenchItem)
    elif key.startswith("v"):
        from django_outbox_pattern.decorators import Config, publish

        publish([Config(destination="/topic/bench_save")])(BenchItem)
    with connection.schema_editor() as editor:
        editor.create_model(BenchItem)
    from django.db import transaction

    started, cpu = time.perf_counter(), time.process_time()
    if mode.startswith("atomic"):
        per_block = int(mode[len("atomic") :] or 1)
        for first in range(0, SAVES, per_block):
            with transaction.atomic():
                for i in range(first, min(first + per_block, SAVES)):
                    BenchItem.objects.create(field_one=f"one {i}", field_two="two")
    else:
        for i in range(SAVES):
            BenchItem.objects.create(field_one=f"one {i}", field_two="two")
    elapsed = time.perf_counter() - started
    emit(SAVES, elapsed, cpu_seconds=time.process_time() - cpu)


# --- subscriber -----------------------------------------------------------------------------

BenchOrder = None


def define_bench_order():
    global BenchOrder
    from django.db import models

    class BenchOrder(models.Model):
        number = models.CharField(max_length=64)

        class Meta:
            app_label = "auth"

    globals()["BenchOrder"] = BenchOrder
    return BenchOrder


def bench_callback(payload):  # the documented callback
    from django.db import transaction

    with transaction.atomic():
        BenchOrder.objects.create(number=str(payload.body["n"]))
        payload.save()


def subscribe(key: str) -> None:
    """``manage.py subscribe`` as its own process, timed from its start to the last Received
    row; its CPU time is the child's (startup included, for both libraries)."""
    kind, _, connections = key.partition("-")
    db_key = f"sub_{kind}_{connections or 'new'}"
    setup_django("ours" if kind == "ours" else "ref", db_key)
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.create_model(define_bench_order())
    if kind == "ours":
        from django_messaging.outbox.models import Received
    else:
        from django_outbox_pattern.models import Received

    destination = f"/topic/bench_sub_{key}_{uuid.uuid4().hex[:6]}"
    queue = f"bench-sub-{key}-{uuid.uuid4().hex[:6]}"
    try:
        _declare_subscriber_queue(destination, queue)
        _preload(destination)
        connection.close()
        args = [sys.executable, __file__, "subscribe-command", key, destination, queue]
        started = time.perf_counter()
        child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(child, lambda: Received.objects.count() >= SUBSCRIBER_MESSAGES, "subscribe")
        elapsed = time.perf_counter() - started
        child.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(child.pid, 0)
        assert Received.objects.count() == SUBSCRIBER_MESSAGES
        assert BenchOrder.objects.count() == SUBSCRIBER_MESSAGES
    finally:
        delete_queues(queue, f"DLQ.{queue}")
    emit(SUBSCRIBER_MESSAGES, elapsed, cpu_seconds=usage.ru_utime + usage.ru_stime)


def subscribe_command(key: str, destination: str, queue: str) -> None:
    """The child: the shipped ``subscribe`` command on the database the parent prepared."""
    kind, _, connections = key.partition("-")
    setup_django(
        "ours" if kind == "ours" else "ref",
        f"sub_{kind}_{connections or 'new'}",
        fresh=False,
        conn_max_age=None if connections == "persistent" else 0,
    )
    define_bench_order()
    from django.core.management import execute_from_command_line

    callback = "__main__.bench_callback"
    execute_from_command_line(["manage.py", "subscribe", callback, destination, queue])


def _declare_subscriber_queue(destination: str, queue: str) -> None:
    """The queue both libraries declare on SUBSCRIBE (same arguments), made before pre-loading."""
    import stomp

    done = threading.Event()

    class Listener(stomp.ConnectionListener):
        def on_receipt(self, frame):
            done.set()

    conn = stomp.Connection12([stomp_address()], vhost="/")
    conn.set_listener("l", Listener())
    conn.connect("guest", "guest", wait=True)
    conn.subscribe(
        destination,
        "decl",
        ack="client-individual",
        headers={
            "x-queue-name": queue,
            "durable": "true",
            "auto-delete": "false",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": f"DLQ.{queue}",
            "receipt": "r",
        },
    )
    done.wait(10)
    conn.unsubscribe("decl")
    conn.disconnect()


def _preload(destination: str) -> None:
    import stomp

    done = threading.Event()
    receipts: set[str] = set()

    class Listener(stomp.ConnectionListener):
        def on_receipt(self, frame):
            receipts.add(frame.headers["receipt-id"])
            if len(receipts) == SUBSCRIBER_MESSAGES:
                done.set()

    conn = stomp.Connection12([stomp_address()], vhost="/")
    conn.set_listener("l", Listener())
    conn.connect("guest", "guest", wait=True)
    for i in range(SUBSCRIBER_MESSAGES):
        conn.send(
            destination,
            json.dumps({"n": i}),
            headers={"dop-msg-id": str(uuid.uuid4()), "persistent": "true", "receipt": f"p{i}"},
        )
    done.wait(60)
    conn.disconnect()


def variants(kind: str, keys: list[tuple[str, str, list[str]]]) -> list[Variant]:
    return [Variant(label, [__file__, kind, key], requirements=reqs) for label, key, reqs in keys]


_ALL_SCENARIOS = [
    Scenario(
        name="outbox relay: Published rows to confirmed on the broker (PostgreSQL)",
        unit="rows/s",
        ours="django-messaging-outbox",
        variants=variants(
            "relay",
            [
                ("django-messaging-outbox", "ours", []),
                *(
                    (f"django-messaging-outbox, {label}", f"ours-{key}", [])
                    for key, label in OBSERVED.items()
                ),
                (
                    "django-messaging-outbox, metrics and tracing enabled, every row sampled",
                    "ours-sampled",
                    [],
                ),
                ("django-outbox-pattern 0.9.0", "v090", REF_090),
                ("django-outbox-pattern 3.2.1", "v321", REF_321),
                ("raw stomp.py send + receipts", "raw", RAW),
            ],
        ),
        targets=[
            Target("django-outbox-pattern 0.9.0", 5.0),
            Target("django-outbox-pattern 3.2.1", 3.0),
            Target("raw stomp.py send + receipts", 0.5),
            # at most 15% more time per row with metrics and tracing on
            Target("django-messaging-outbox, metrics and tracing enabled", at_most=1.15),
        ],
        note=(
            f"{RELAY_ROWS} rows, destination bound to a durable queue. Ours and raw stomp.py send "
            "persistent messages and wait for every receipt; the reference versions send "
            "transient messages without receipts (their behaviour). 0.9.0: one pass of its "
            "command loop; 3.2.1: one `publish_message_from_database()` with its waiting time 0. "
            "CPU µs/op: the relay process's CPU time while relaying (not the broker's or "
            "PostgreSQL's; none for raw stomp.py). " + OBSERVABILITY_NOTE
        ),
    ),
    *(
        Scenario(
            name=f"outbox relay to Kafka: manage.py publish, {KAFKA_RELAY_ROWS} rows {when} "
            "(PostgreSQL, Tansu)",
            unit="rows/s",
            ours="django-messaging-outbox publish, kafka transport",
            variants=[
                Variant(label, [__file__, "relay-command", key, timing])
                for label, key in [
                    ("django-messaging-outbox publish, kafka transport", "ours-kafka"),
                    ("django-messaging-outbox publish, STOMP transport", "ours"),
                    ("raw confluent-kafka produce + delivery reports", "raw-kafka"),
                ]
            ],
            targets=[
                Target("django-messaging-outbox publish, STOMP transport", 3.0),
                Target("raw confluent-kafka produce + delivery reports", 0.3),
            ],
            note=note,
        )
        for when, timing, note in [
            (
                "from process start",
                "start",
                f"{KAFKA_RELAY_ROWS} rows without a key in a fresh table; `manage.py publish` "
                "(`--transport kafka` for the Kafka rows) as its own process with the documented "
                "defaults (DEFAULT_PUBLISHED_CHUNK_SIZE 500, two batches in flight; the kafka "
                "transport: idempotent producer, linger.ms 5), timed by the parent from the "
                "process start to the last row marked sent. STOMP: persistent messages to a "
                "destination bound to a durable queue, each receipt awaited. Raw: a process "
                "producing the same bodies with one idempotent confluent-kafka producer (linger.ms "
                "5), timed to its exit after the last delivery report; it reads and writes no "
                "database. CPU: the process's user + system time, all threads. Both Kafka "
                "processes wait about 0.5 s for their first delivery report: librdkafka asks for "
                "an idempotent producer's id when the broker connection is up, checked on a "
                "500 ms timer, and the connection is not up yet at its first check (a "
                "non-idempotent producer's first report came after 6 ms). The STOMP relay has "
                "no such wait.",
            ),
            (
                "running (from the first batch on)",
                "steady",
                "The runs above timed from the moment the first batch of 500 rows is marked sent "
                "(the raw process: its first 500 delivery reports) to the end: a running relay "
                "without its start (Django, checks, imports, connecting).",
            ),
        ]
    ),
    Scenario(
        name="@publish overhead, autocommit: Model.objects.create (PostgreSQL)",
        unit="saves/s",
        ours="django-messaging-outbox @publish",
        variants=variants(
            "save",
            [
                ("django-messaging-outbox @publish", "ours", []),
                ("plain save, no decorator", "plain", []),
                ("django-outbox-pattern 0.9.0 @publish", "v090", REF_090),
                ("django-outbox-pattern 3.2.1 @publish", "v321", REF_321),
            ],
        ),
        targets=[Target("plain save, no decorator", 1 / 1.5)],
        note=(
            "A plain autocommit save is one statement (INSERT). On PostgreSQL the decorated "
            "create is one statement too: the model's INSERT carries the outbox row "
            "(`WITH saved AS (INSERT ...), m0 AS (INSERT INTO messaging_outbox_published ...)`), "
            "so both commit together without BEGIN/COMMIT (tests/outbox/test_decorators.py). "
            "Saves that cannot be one statement (updates, a custom save(), pre/post_save "
            "receivers, serializer configs) run BEGIN, two INSERTs, COMMIT instead."
        ),
    ),
    *[
        Scenario(
            name=f"@publish overhead, {label}: Model.objects.create (PostgreSQL)",
            unit="saves/s",
            ours="django-messaging-outbox @publish",
            variants=variants(
                "save",
                [
                    ("django-messaging-outbox @publish", f"ours-{mode}", []),
                    ("plain save, no decorator", f"plain-{mode}", []),
                    ("django-outbox-pattern 3.2.1 @publish", f"v321-{mode}", REF_321),
                ],
            ),
            targets=[Target("plain save, no decorator", 1 / 1.5)],
            note=(
                f"{text} The decorated create is the plain INSERT; the outbox rows of the "
                "block are written by one more INSERT just before COMMIT (one JSON parameter "
                "read by `jsonb_populate_recordset`; no prepared statement)."
            ),
        )
        for label, mode, text in [
            (
                "inside atomic()",
                "atomic",
                "Each save in its own `transaction.atomic()` block: BEGIN, INSERT, COMMIT.",
            ),
            (
                "ten per atomic()",
                "atomic10",
                "Ten saves per `transaction.atomic()` block: BEGIN, ten INSERTs, COMMIT.",
            ),
        ]
    ],
    *[
        Scenario(
            name=f"subscriber: manage.py subscribe process, documented callback, {label}",
            unit="msgs/s",
            ours="django-messaging-outbox",
            variants=variants(
                "subscribe",
                [
                    ("django-messaging-outbox", f"ours{suffix}", []),
                    ("django-outbox-pattern 3.2.1", f"v321{suffix}", REF_321),
                ],
            ),
            targets=[Target("django-outbox-pattern 3.2.1", 2.0)],
            note=(
                f"{SUBSCRIBER_MESSAGES} messages pre-loaded in the queue. Each library's "
                "`manage.py subscribe` runs as its own process with the documented callback "
                "(`transaction.atomic()` + `payload.save()`); the clock runs from the process "
                "start to the last Received row, CPU is the subscriber process's (startup "
                "included). Both with their default queue headers. 0.9.0 has no payload.save() "
                "and is not compared."
            ),
        )
        for label, suffix in [
            ("CONN_MAX_AGE=0", ""),
            ("CONN_MAX_AGE=None", "-persistent"),
        ]
    ],
]

#: ``BENCH_OUTBOX_ONLY=subscriber,@publish`` runs only the scenarios whose name mentions one.
_ONLY = [w for w in os.environ.get("BENCH_OUTBOX_ONLY", "").split(",") if w]
SCENARIOS = [s for s in _ALL_SCENARIOS if not _ONLY or any(w in s.name for w in _ONLY)]

if __name__ == "__main__":
    commands = {
        "relay": relay,
        "save": save,
        "subscribe": subscribe,
        "relay-command": relay_command,
        "relay-child": relay_child,
    }
    commands["subscribe-command"] = subscribe_command
    commands[sys.argv[1]](*sys.argv[2:])
