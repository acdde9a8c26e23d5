"""CQRS: replica apply rate, master publish rate, bulk dump and bulk load, against django-cqrs.

Every variant runs in its own process on PostgreSQL and the same RabbitMQ; django-cqrs runs from
its own virtualenv (the harness installs it). Row counts are kept moderate so that a run fits on
a small shared machine: ``BENCH_CQRS_DUMP_ROWS`` and ``BENCH_CQRS_LOAD_ROWS`` (default 100 000
each; django-cqrs loads about 1 100 rows/s here, so a load round takes it about 90 s),
``BENCH_CQRS_MESSAGES`` (apply, default 4 000) and ``BENCH_CQRS_SAVES`` (publish, default 3 000).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from tests.benchmarks.harness import Scenario, Target, Variant, emit

DUMP_ROWS = int(os.environ.get("BENCH_CQRS_DUMP_ROWS", "100000"))
LOAD_ROWS = int(os.environ.get("BENCH_CQRS_LOAD_ROWS", "100000"))
MESSAGES = int(os.environ.get("BENCH_CQRS_MESSAGES", "4000"))
SAVES = int(os.environ.get("BENCH_CQRS_SAVES", "3000"))
DB_NAME = "messaging_cqrs_bench"
REF_310 = ["django-cqrs==3.1.0", "Django>=5.2,<5.3", "psycopg[binary]>=3.1"]
REF_281 = ["django-cqrs==2.8.1", "Django>=4.2,<4.3", "psycopg[binary]>=3.1"]
AMQP_URL = os.environ.get("MESSAGING_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PG_URL = os.environ.get("MESSAGING_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def _ensure_database() -> dict:
    import psycopg

    parts = urlsplit(PG_URL)
    conninfo = dict(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres")
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "HOST": conninfo["host"],
        "PORT": conninfo["port"],
        "USER": conninfo["user"],
        "PASSWORD": parts.password or "",
    }


def setup(side: str, tag: str) -> dict:
    """Configure Django for ``side`` (``ours`` or ``ref``); define and create the models."""
    import django
    from django.conf import settings

    exchange = f"bench-cqrs-{tag}-{os.getpid()}"
    queue = f"bench-cqrs-{tag}-{os.getpid()}-q"
    cqrs = {"url": AMQP_URL, "exchange": exchange, "queue": queue}
    apps = ["django.contrib.contenttypes", "tests.benchmarks"]
    if side == "ours":
        cqrs["transport"] = "django_messaging.cqrs.transport.RabbitMQTransport"
        if os.environ.get("BENCH_CQRS_CONFIRMS"):
            cqrs["master"] = {"CQRS_PUBLISH_CONFIRMS": os.environ["BENCH_CQRS_CONFIRMS"]}
        extra = {"MESSAGING": {"CQRS": cqrs}}
        apps[1:1] = ["django_messaging.core", "django_messaging.cqrs"]
    else:
        cqrs["transport"] = "dj_cqrs.transport.RabbitMQTransport"
        cqrs["url"] = AMQP_URL.rsplit("/", 1)[0] + "/"  # django-cqrs cannot parse a vhost
        # Every key spelled out: django-cqrs fills defaults only for models known at startup.
        cqrs["master"] = {
            "CQRS_AUTO_UPDATE_FIELDS": False,
            "CQRS_MESSAGE_TTL": 86400,
            "correlation_function": None,
            "meta_function": None,
        }
        cqrs["replica"] = {
            "CQRS_MAX_RETRIES": 1,
            "CQRS_RETRY_DELAY": 1,
            "delay_queue_max_size": 1000,
            "dead_letter_queue": f"dead_letter_{queue}",
            "dead_message_ttl": 864000,
        }
        extra = {"CQRS": cqrs}
        apps[1:1] = ["dj_cqrs"]
    settings.configure(
        INSTALLED_APPS=apps,
        DATABASES={"default": _ensure_database()},
        USE_TZ=True,
        SECRET_KEY="bench",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
        **extra,
    )
    django.setup()
    from django.db import models

    if side == "ours":
        from django_messaging.cqrs.mixins import MasterMixin, ReplicaMixin
    else:
        from dj_cqrs.mixins import MasterMixin, ReplicaMixin

    class BenchItem(MasterMixin, models.Model):
        CQRS_ID = f"bench_{tag}"
        name = models.CharField(max_length=200)
        price = models.DecimalField(max_digits=12, decimal_places=2)
        flag = models.BooleanField(default=False)
        created = models.DateTimeField()
        counter = models.IntegerField(default=0)

        class Meta:
            app_label = "benchmarks"
            db_table = f"bench_cqrs_{tag}_master"

    class BenchItemRef(ReplicaMixin, models.Model):
        CQRS_ID = f"bench_{tag}"
        id = models.BigIntegerField(primary_key=True)
        name = models.CharField(max_length=200)
        price = models.DecimalField(max_digits=12, decimal_places=2)
        flag = models.BooleanField(default=False)
        created = models.DateTimeField()
        counter = models.IntegerField(default=0)

        class Meta:
            app_label = "benchmarks"
            db_table = f"bench_cqrs_{tag}_replica"

    from django.core.management import call_command
    from django.db import connection

    if side == "ours":
        call_command("migrate", "messaging_cqrs", verbosity=0)
        # Every publish writes and deletes a row here. Autovacuum, which keeps such a table
        # small in production, is off on the machines this runs on: start each run vacuumed.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM messaging_cqrs_pendingmessage")
    existing = connection.introspection.table_names()
    with connection.schema_editor() as editor:
        for model in (BenchItem, BenchItemRef):
            if model._meta.db_table not in existing:
                editor.create_model(model)
    return {"master": BenchItem, "replica": BenchItemRef, "cqrs": cqrs, "id": f"bench_{tag}"}


def _channel(cqrs: dict, cqrs_id: str):
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = conn.channel()
    channel.exchange_declare(cqrs["exchange"], "topic", durable=True)
    channel.queue_declare(cqrs["queue"], durable=True)
    channel.queue_bind(cqrs["queue"], cqrs["exchange"], routing_key=cqrs_id)
    channel.queue_bind(
        cqrs["queue"], cqrs["exchange"], routing_key=f"cqrs.{cqrs['queue']}.{cqrs_id}"
    )
    return conn, channel


def _cleanup(channel, cqrs: dict) -> None:
    for name in (cqrs["queue"], f"dead_letter_{cqrs['queue']}"):
        channel.queue_delete(name)
    channel.exchange_delete(cqrs["exchange"])


def _body(cqrs_id: str, pk: int, revision: int) -> bytes:
    now = dt.datetime.now(dt.UTC)
    data = {
        "id": pk,
        "name": f"item {pk} r{revision}",
        "price": "12.50",
        "flag": revision % 2 == 0,
        "created": str(now),
        "counter": revision,
        "cqrs_revision": revision,
        "cqrs_updated": str(now),
    }
    return json.dumps(
        {
            "signal_type": "SAVE",
            "cqrs_id": cqrs_id,
            "instance_data": data,
            "previous_data": None,
            "instance_pk": pk,
            "correlation_id": None,
            "retries": 0,
            "expires": (now + dt.timedelta(days=1)).replace(microsecond=0).isoformat(),
            "meta": None,
        }
    ).encode()


def apply_rate(side: str, tag: str) -> None:
    """Messages queued first (creates, then an update of each row), then drained and timed."""
    env = setup(side, tag)
    replica, cqrs, cqrs_id = env["replica"], env["cqrs"], env["id"]
    replica.objects.all().delete()
    conn, channel = _channel(cqrs, cqrs_id)
    half = MESSAGES // 2
    for revision in (0, 1):
        for pk in range(1, half + 1):
            channel.basic_publish(cqrs["exchange"], cqrs_id, _body(cqrs_id, pk, revision))
    while channel.queue_declare(cqrs["queue"], passive=True).method.message_count < 2 * half:
        time.sleep(0.05)

    deadline = time.monotonic() + 300

    def done() -> bool:
        if time.monotonic() > deadline:
            raise SystemExit("the replica did not catch up within 300s")
        return replica.objects.filter(cqrs_revision=1).count() == half

    started = time.perf_counter()
    if side == "ours":
        from django_messaging.cqrs.transport.rabbit_mq import RabbitMQConsumer

        worker = RabbitMQConsumer()
        worker.start()
        while not done():
            worker.run_once()
        elapsed = time.perf_counter() - started
        worker.stop()
    else:
        from dj_cqrs.transport import RabbitMQTransport

        threading.Thread(target=RabbitMQTransport.consume, daemon=True).start()
        while not done():
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    _cleanup(channel, cqrs)
    conn.close()
    emit(2 * half, elapsed)
    os._exit(0)  # django-cqrs's consumer thread never returns


def _wait_for_queue(channel, queue: str, count: int, timeout: float) -> int:
    """Poll the replica queue until it holds ``count`` messages (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        depth = channel.queue_declare(queue, passive=True).method.message_count
        if depth >= count or time.monotonic() > deadline:
            return depth
        time.sleep(0.002)


def _publish_rate(side: str, tag: str, per_block: int) -> None:
    """``Model.objects.create()``: in autocommit (``per_block=0``) or ``per_block`` creates per
    ``transaction.atomic()`` block. The clock runs from the first save until the replica queue
    holds every message; CPU time (every thread of the process) is measured over the same span."""
    from django.db import transaction

    env = setup(side, tag)
    master, cqrs, cqrs_id = env["master"], env["cqrs"], env["id"]
    conn, channel = _channel(cqrs, cqrs_id)
    now = dt.datetime.now(dt.UTC)
    started, cpu_started = time.perf_counter(), time.process_time()
    if per_block:
        for first in range(0, SAVES, per_block):
            with transaction.atomic():
                for i in range(first, min(first + per_block, SAVES)):
                    master.objects.create(name=f"n{i}", price=Decimal("1.25"), created=now)
    else:
        for i in range(SAVES):
            master.objects.create(name=f"n{i}", price=Decimal("1.25"), created=now)
    depth = _wait_for_queue(channel, cqrs["queue"], SAVES, timeout=30)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if side == "ours" and _wait_for_confirms():
        raise SystemExit("unconfirmed messages")
    _cleanup(channel, cqrs)
    conn.close()
    if depth != SAVES:
        # Reported, not fatal for the reference libraries (publishing without confirms).
        print(f"{SAVES - depth} of {SAVES} messages never reached the queue", file=sys.stderr)
        if side == "ours":
            raise SystemExit("messages were lost")
    emit(SAVES, elapsed, cpu)
    os._exit(0)


def _wait_for_confirms() -> int:
    from django_messaging.cqrs.publishing import wait_for_confirms

    return wait_for_confirms()


def publish_rate(side: str, tag: str) -> None:
    _publish_rate(side, tag, per_block=0)


def publish_atomic_1(side: str, tag: str) -> None:
    _publish_rate(side, tag, per_block=1)


def publish_atomic_10(side: str, tag: str) -> None:
    _publish_rate(side, tag, per_block=10)


def update_rate(side: str, tag: str) -> None:
    """``instance.save()`` of existing rows in autocommit: each update is published on commit."""
    env = setup(side, tag)
    master, cqrs, cqrs_id = env["master"], env["cqrs"], env["id"]
    now = dt.datetime.now(dt.UTC)
    rows = [
        master.objects.create(name="row", price=Decimal("1.25"), created=now) for _ in range(50)
    ]
    if side == "ours":
        _wait_for_confirms()
    conn, channel = _channel(cqrs, cqrs_id)
    started = time.perf_counter()
    for i in range(SAVES):
        row = rows[i % len(rows)]
        row.name = f"n{i}"
        row.save()
    if side == "ours" and _wait_for_confirms():
        raise SystemExit("unconfirmed messages")
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        depth = channel.queue_declare(cqrs["queue"], passive=True).method.message_count
        if depth >= SAVES:
            break
        time.sleep(0.05)
    _cleanup(channel, cqrs)
    conn.close()
    if depth != SAVES:
        print(f"{SAVES - depth} of {SAVES} messages never reached the queue", file=sys.stderr)
        if side == "ours":
            raise SystemExit("messages were lost")
    emit(SAVES, elapsed)
    os._exit(0)


def _fill_master(master, rows: int) -> None:
    if master.objects.count() == rows:
        return
    master.objects.all().delete()
    now = dt.datetime.now(dt.UTC)
    master.objects.bulk_create(
        [master(name=f"row {i}", price=Decimal("3.50"), created=now) for i in range(rows)],
        batch_size=5000,
    )


def dump_rate(side: str, tag: str) -> None:
    env = setup(side, tag)
    _fill_master(env["master"], DUMP_ROWS)
    from django.core.management import call_command

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.dump"
        started = time.perf_counter()
        call_command("cqrs_bulk_dump", f"--cqrs-id={env['id']}", f"--output={path}")
        elapsed = time.perf_counter() - started
    emit(DUMP_ROWS, elapsed)


def load_rate(side: str, tag: str) -> None:
    env = setup(side, tag)
    from django.core.management import call_command

    _fill_master(env["master"], LOAD_ROWS)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.dump"
        call_command("cqrs_bulk_dump", f"--cqrs-id={env['id']}", f"--output={path}")
        env["replica"].objects.all()._raw_delete("default")
        started = time.perf_counter()
        call_command("cqrs_bulk_load", f"--input={path}")
        elapsed = time.perf_counter() - started
    if env["replica"].objects.count() != LOAD_ROWS:
        raise SystemExit("not every row was loaded")
    emit(LOAD_ROWS, elapsed)


KINDS = {
    "apply": apply_rate,
    "publish": publish_rate,
    "publish_atomic_1": publish_atomic_1,
    "publish_atomic_10": publish_atomic_10,
    "update": update_rate,
    "dump": dump_rate,
    "load": load_rate,
}


def _variants(kind: str, with_281: bool, pipelined: bool = False) -> list[Variant]:
    variants = [
        Variant("django-messaging-cqrs", [__file__, kind, "ours", f"{kind}_ours"]),
        Variant("django-cqrs 3.1.0", [__file__, kind, "ref", f"{kind}_r310"], requirements=REF_310),
    ]
    if pipelined:
        variants += [
            Variant(
                "django-messaging-cqrs, confirm awaited per message",
                [__file__, kind, "ours", f"{kind}_oure"],
                env={"BENCH_CQRS_CONFIRMS": "each"},
            ),
            Variant(
                "django-messaging-cqrs, pipelined confirms",
                [__file__, kind, "ours", f"{kind}_ourp"],
                env={"BENCH_CQRS_CONFIRMS": "pipelined"},
            ),
        ]
    if with_281:
        variants.append(
            Variant(
                "django-cqrs 2.8.1", [__file__, kind, "ref", f"{kind}_r281"], requirements=REF_281
            )
        )
    return variants


_ALL_SCENARIOS = [
    Scenario(
        name=f"cqrs: replica apply rate ({MESSAGES} messages, PostgreSQL, 1 worker)",
        unit="msgs/s",
        ours="django-messaging-cqrs",
        variants=_variants("apply", with_281=True),
        targets=[Target("django-cqrs 3.1.0", 3.0)],
        note="Half creates, half updates of the same rows, queued before the consumer starts.",
    ),
    Scenario(
        name=f"cqrs: master publish rate on save ({SAVES} creates, PostgreSQL, autocommit)",
        unit="saves/s",
        ours="django-messaging-cqrs",
        variants=_variants("publish", with_281=True, pipelined=True),
        targets=[Target("django-cqrs 3.1.0", 1.0), Target("django-cqrs 2.8.1", 1.0)],
        note=(
            "django-messaging-cqrs publishes with confirms. The default (CQRS_PUBLISH_CONFIRMS = "
            "'outbox') writes each message row in the save's own statement (prepared), hands the "
            "message to the publisher thread after the commit and deletes its row once "
            "confirmed; 'each' waits for every confirm inside save(); 'pipelined' hands messages "
            "to the publisher thread without storing them. The clock runs from the first save until the "
            "replica queue holds every message. django-cqrs publishes without confirms and stores "
            "nothing."
        ),
    ),
    Scenario(
        name=(
            "cqrs: master publish rate on save, one per transaction.atomic() block "
            f"({SAVES} creates, PostgreSQL)"
        ),
        unit="saves/s",
        ours="django-messaging-cqrs",
        variants=_variants("publish_atomic_1", with_281=True),
        targets=[Target("django-cqrs 3.1.0", 1.0), Target("django-cqrs 2.8.1", 1.0)],
        note=(
            "Each create in its own transaction.atomic() block; default settings on both sides "
            "(django-messaging-cqrs writes the create's message row in the create's own INSERT, "
            "as in autocommit). The clock runs from the first save until the replica queue "
            "holds every message."
        ),
    ),
    Scenario(
        name=(
            "cqrs: master publish rate on save, ten per transaction.atomic() block "
            f"({SAVES} creates, PostgreSQL)"
        ),
        unit="saves/s",
        ours="django-messaging-cqrs",
        variants=_variants("publish_atomic_10", with_281=True),
        targets=[Target("django-cqrs 3.1.0", 1.0), Target("django-cqrs 2.8.1", 1.0)],
        note=(
            "Ten creates per transaction.atomic() block; default settings on both sides "
            "(django-messaging-cqrs: the first create carries its message row in its own "
            "INSERT, the other nine rows go in one INSERT sent with the COMMIT). The clock runs "
            "from the first save until the replica queue holds every message."
        ),
    ),
    Scenario(
        name=f"cqrs: master publish rate on update ({SAVES} saves of 50 rows, PostgreSQL, autocommit)",
        unit="saves/s",
        ours="django-messaging-cqrs",
        variants=_variants("update", with_281=False),
        targets=[Target("django-cqrs 3.1.0", 1.0)],
        note=(
            "As above, for saves of existing rows: each increments cqrs_revision, which the "
            "message carries."
        ),
    ),
    Scenario(
        name=f"cqrs: cqrs_bulk_dump ({DUMP_ROWS} rows, PostgreSQL)",
        unit="rows/s",
        ours="django-messaging-cqrs",
        variants=_variants("dump", with_281=False),
        targets=[Target("django-cqrs 3.1.0", 5.0)],
    ),
    Scenario(
        name=f"cqrs: cqrs_bulk_load ({LOAD_ROWS} rows, PostgreSQL, empty replica)",
        unit="rows/s",
        ours="django-messaging-cqrs",
        variants=_variants("load", with_281=False),
        targets=[Target("django-cqrs 3.1.0", 5.0)],
    ),
]

#: ``BENCH_CQRS_ONLY=publish,dump`` runs only the scenarios whose name mentions one of these.
_ONLY = [w for w in os.environ.get("BENCH_CQRS_ONLY", "").split(",") if w]
SCENARIOS = [s for s in _ALL_SCENARIOS if not _ONLY or any(w in s.name for w in _ONLY)]

if __name__ == "__main__":
    KINDS[sys.argv[1]](sys.argv[2], sys.argv[3])
