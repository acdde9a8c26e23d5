"""django-messaging-kafka against django-kafka 0.5.13 and 5.1.2 and raw confluent-kafka, same broker.

Each variant is this file run as ``python bench_kafka.py <scenario> <variant>``; the reference
variants run in their own virtualenvs with ``django-kafka==0.5.13`` (which pins confluent-kafka
2.7.0) and ``django-kafka==5.1.2``. Consumers run through each library's ``kafka_consume``
command as a process of its own (see :func:`consume_command`), each on a freshly filled topic,
and report CPU time per message beside throughput.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid

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

REFERENCE = ["django-kafka==0.5.13", "Django>=5.2,<5.3", "psycopg[binary]>=3.1"]
REFERENCE_NEWEST = ["django-kafka==5.1.2", "Django>=5.2,<5.3", "psycopg[binary]>=3.1"]
#: ``BENCH_KAFKA_SMOKE=1``: a hundredth of the messages, to check that every variant runs
_SCALE = 100 if os.environ.get("BENCH_KAFKA_SMOKE") else 1
CONSUME_N = 200_000 // _SCALE
#: the in-process observability rows: runs of about a second, so a stall does not decide them
OBSERVED_N = 600_000 // _SCALE
PRODUCE_N = 200_000 // _SCALE
INSERT_N = 20_000 // (_SCALE // 10 or 1)
AVRO_N = 20_000
MODEL_N = 5_000
FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 20}
VALUE_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": "string"},
            {"name": "item", "type": "string"},
            {"name": "quantity", "type": "int"},
            {"name": "price", "type": "double"},
            {"name": "paid", "type": "boolean"},
        ],
    }
)
RECORD = {"id": 1, "customer": "c-1", "item": "hammer", "quantity": 3, "price": 9.5, "paid": True}
PAYLOAD = {"id": 12345, "name": "A product", "price": "12.50", "tags": ["a", "b"], "active": True}


def bootstrap() -> str:
    return os.environ["MESSAGING_KAFKA_BOOTSTRAP"]


def setup_django(variant: str, db: str = "postgres", sqlite_path: str = "-") -> None:
    """``sqlite_path``: the SQLite file to use ("-": a new one)."""
    import django
    from django.conf import settings

    from tests import services

    if db == "sqlite":
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": sqlite_path
            if sqlite_path != "-"
            else os.path.join(tempfile.mkdtemp(prefix="bench-kafka-"), "db.sqlite3"),
        }
    else:
        pg = services.url_parts(services.POSTGRES_URL)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": pg["name"] or "postgres",
            "USER": pg["user"] or "postgres",
            "PASSWORD": pg["password"] or "",
            "HOST": pg["host"],
            "PORT": pg["port"] or 5432,
        }
    kafka_settings = {
        "GLOBAL_CONFIG": {"bootstrap.servers": bootstrap()},
        "CONSUMER_CONFIG": dict(FAST_GROUP),
        "PRODUCER_CONFIG": {"linger.ms": 5},
        "SCHEMA_REGISTRY": {"url": "mock://bench"},
        "POLLING_FREQUENCY": 0.5,
    }
    if variant.startswith("ours"):
        settings.configure(
            INSTALLED_APPS=["django_messaging.core", "django_messaging.kafka"],
            DATABASES={"default": database},
            MESSAGING={"KAFKA": kafka_settings},
            USE_TZ=True,
        )
    else:
        settings.configure(
            INSTALLED_APPS=["django_kafka"],
            DATABASES={"default": database},
            DJANGO_KAFKA=kafka_settings,
            USE_TZ=True,
        )
    django.setup()


def fill_topic(
    values: list[bytes], keys: list[bytes] | None = None, trace_flags: str | None = None
) -> str:
    """A new topic holding the messages; ``trace_flags`` ("01" sampled, "00" sampled out) gives
    each message the ``traceparent`` of a trace of its own."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    for future in admin.create_topics([NewTopic(name, 1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": bootstrap(), "linger.ms": 20, "batch.size": 65_536})
    for i, value in enumerate(values):
        while True:
            try:
                headers = None
                if trace_flags is not None:
                    parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-{trace_flags}"
                    headers = [("traceparent", parent.encode())]
                producer.produce(name, value, key=keys[i] if keys else None, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return name


class Clock:
    """Wall and process CPU time from the first message to the last."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.started = 0.0
        self.cpu_started = 0.0

    def tick(self) -> None:
        if self.count == 0:
            self.started = time.perf_counter()
            self.cpu_started = time.process_time()
        self.count += 1

    def done(self) -> bool:
        return self.count >= self.total

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu = time.process_time() - self.cpu_started

    def emit(self) -> None:
        emit(self.count, self.seconds, self.cpu)


#: variant key suffix -> the trace flags of every message's traceparent (see core.tracing)
TRACED = {"sampled": "01", "sampled-out": "00"}
TRACED_LABELS = {
    "sampled": "metrics and tracing enabled, every message in a sampled trace",
    "sampled-out": "metrics and tracing enabled, every message in a sampled-out trace",
}


def keyed_messages(n: int) -> tuple[list[bytes], list[bytes]]:
    return [b"x" * 100] * n, [f"key-{i % 1000}".encode() for i in range(n)]


# --- consumers -----------------------------------------------------------------------------
#
# The README handler deserializes key and value with the topic's deserializers (UTF-8 strings
# by default); "insert" adds one ORM INSERT per message. Model-sync consumers ("dbz", "model")
# run `update_or_create` per message. Every consumer runs as its users run it: its library's
# `manage.py kafka_consume` as a process of its own (see consume_command). The observability
# rows, which compare one library with itself, run the loop in the variant's own process.

MARK = "bench-mark "


class Marks:
    """In the consuming process: prints the time and the process's CPU time at the first and
    at the last of ``total`` messages, for the parent timing it (see consume_command)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self.count == 1 or self.count == self.total:
            mark = {"at": time.monotonic(), "cpu": time.process_time(), "pid": os.getpid()}
            print(MARK + json.dumps(mark), flush=True)


def row_model(table: str):
    from django.db import models

    class BenchRow(models.Model):
        key = models.CharField(max_length=100)
        value = models.TextField()

        class Meta:
            app_label = "bench_kafka"
            db_table = table

    return BenchRow


PRODUCT_ROWS = 2_000


def product_model(table: str):
    from django.db import models

    class BenchProduct(models.Model):
        id = models.BigIntegerField(primary_key=True)
        name = models.CharField(max_length=100)
        first_name = models.CharField(max_length=100, default="")
        price = models.DecimalField(max_digits=10, decimal_places=2)
        stock = models.IntegerField(default=0)

        class Meta:
            app_label = "bench_kafka"
            db_table = table

    return BenchProduct


def create_table(model) -> None:
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.create_model(model)


def drop_table(model) -> None:
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.delete_model(model)


def inbox_table(create: bool) -> None:
    """The ``ProcessedMessage`` table of idempotent topics (created without ``migrate``)."""
    from django.db import connection

    from django_messaging.kafka.models import ProcessedMessage

    exists = ProcessedMessage._meta.db_table in connection.introspection.table_names()
    with connection.schema_editor() as editor:
        if exists:
            editor.delete_model(ProcessedMessage)
        if create:
            editor.create_model(ProcessedMessage)


def product_messages(kind: str, n: int) -> tuple[list[bytes], list[bytes]]:
    if kind == "dbz":
        keys = [json.dumps({"id": i % PRODUCT_ROWS}).encode() for i in range(n)]
    else:
        keys = [json.dumps(i % PRODUCT_ROWS).encode() for i in range(n)]
    values = [
        json.dumps(
            {
                "id": i % PRODUCT_ROWS,
                "name": f"product {i}",
                "price": f"{i % 500}.25",
                "stock": i,
                "__deleted": "false" if kind == "dbz" else False,
            }
        ).encode()
        for i in range(n)
    ]
    return values, keys


def readme_topic(variant: str, name: str, row, clock):
    """The README's topic consumer class of ``variant``'s library; ``row``: a model the
    handler INSERTs one row per message into (``None``: no database)."""
    from confluent_kafka.serialization import MessageField

    if variant.startswith("ours"):
        from django_messaging.kafka.topic import TopicConsumer
    else:
        from django_kafka.topic import TopicConsumer

    class Readme(TopicConsumer):
        def consume(self, msg):
            key = self.deserialize(msg.key(), MessageField.KEY, msg.headers())
            value = self.deserialize(msg.value(), MessageField.VALUE, msg.headers())
            if row is not None:
                row.objects.create(key=key, value=value)
            clock.tick()

    Readme.name = name
    if variant == "ours-nonatomic":
        Readme.atomic = False
    if variant == "ours-idempotent":
        Readme.idempotent = True
    Readme.__abstractmethods__ = frozenset()
    return Readme


def product_topic(variant: str, kind: str, name: str, model, clock):
    """``kind`` "dbz": a ``DbzModelTopicConsumer``; "model": the README's
    ``ModelTopicConsumer`` (``exclude_fields``, ``is_deletion``, ``get_lookup_kwargs``,
    ``transform_name``), the same for both libraries. ``variant`` "ours-bulk" sets
    ``bulk = True``."""
    if variant.startswith("ours"):
        from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
        from django_messaging.kafka.topic.model import ModelTopicConsumer

        base = DbzModelTopicConsumer if kind == "dbz" else ModelTopicConsumer

        class Products(base):
            bulk = variant == "ours-bulk"

            def consume_batch(self, msgs):
                super().consume_batch(msgs)
                for _ in msgs:
                    clock.tick()

            def consume(self, msg):
                super().consume(msg)
                clock.tick()

    else:
        from confluent_kafka.serialization import StringDeserializer
        from django_kafka.topic.debezium import DbzModelTopicConsumer
        from django_kafka.topic.model import ModelTopicConsumer

        class JSONDeserializer(StringDeserializer):
            def __call__(self, value, ctx=None):
                return None if value is None else json.loads(value)

        base = DbzModelTopicConsumer if kind == "dbz" else ModelTopicConsumer

        class Products(base):
            key_deserializer = JSONDeserializer
            value_deserializer = JSONDeserializer

            def consume(self, msg):
                super().consume(msg)
                clock.tick()

    if kind == "model":
        Products.exclude_fields = ["id"]
        Products.is_deletion = lambda self, model, key, value: value.pop("__deleted", False)
        Products.get_lookup_kwargs = lambda self, model, key, value: {"id": key}
        Products.transform_name = lambda self, model, field_name, value: (
            "first_name",
            value.upper(),
        )
    Products.model = model
    Products.name = name
    Products.__abstractmethods__ = frozenset()
    return Products


def consumer_class(variant: str, topic):
    """The consumer of ``topic`` (an instance), as each library's README configures one."""
    if variant.startswith("ours"):
        from django_messaging.kafka.consumer import Consumer, Topics
    else:
        from django_kafka.consumer import Consumer, Topics

    config = {"group.id": f"g-{topic.name}", "auto.offset.reset": "earliest"}
    if not variant.startswith("ours"):
        config["enable.auto.offset.store"] = False  # django-kafka's README (it stores offsets)
    return type("BenchConsumer", (Consumer,), {"topics": Topics(topic), "config": config})


def topic_class(kind: str, variant: str, name: str, table: str, clock):
    if kind in ("dbz", "model"):
        return product_topic(variant, kind, name, product_model(table), clock)
    return readme_topic(variant, name, row_model(table) if kind == "insert" else None, clock)


def consume_command(kind: str, variant: str, db: str, timing: str) -> None:
    """One consumer run the way its users run it: ``manage.py kafka_consume <its key>`` (raw:
    a plain ``consume(num_messages=500)`` loop) as a process of its own, started by this one
    on a topic filled beforehand. The consuming process prints the time and its CPU time at
    its first and its last message (:class:`Marks`). ``timing`` "start": the clock runs from
    this process's ``Popen`` to the last message, and CPU is every process of the command's
    (Django's start, the group join, a worker pool's fork, all included); "steady": from the
    first message to the last, and CPU is the consuming process's in that interval. For a
    handler that writes, the clock stops when the last message's write is committed (polled
    once the last message was handled: our consumer commits a batch after its last message).
    The command is then killed (SIGKILL to its process group, as django-kafka 0.5.13 leaves
    its workers running on SIGTERM) and the database checked."""
    import signal
    import subprocess
    import threading

    n = {"consume": CONSUME_N, "insert": INSERT_N}.get(kind, MODEL_N)
    sqlite_path = "-"
    if db == "sqlite":
        sqlite_path = os.path.join(tempfile.mkdtemp(prefix="bench-kafka-"), "db.sqlite3")
    table = f"bench_kafka_{kind}_{variant.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    model = None
    if not variant.startswith("raw"):
        setup_django(variant, db, sqlite_path)
        if kind in ("insert", "dbz", "model"):
            model = product_model(table) if kind in ("dbz", "model") else row_model(table)
            create_table(model)
        if variant == "ours-idempotent":
            inbox_table(create=True)
        from django.db import connections

        connections.close_all()
    if kind in ("dbz", "model"):
        name = fill_topic(*product_messages(kind, n))
    else:
        name = fill_topic(*keyed_messages(n))
    argv = [sys.executable, __file__, "consume-child", kind, variant, db, name, table, sqlite_path]
    with tempfile.TemporaryFile("w+") as stderr:
        started = time.monotonic()
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True
        )
        watchdog = threading.Timer(600, os.killpg, (child.pid, signal.SIGKILL))
        watchdog.start()
        try:
            marks = []
            while len(marks) < 2:
                line = child.stdout.readline()
                if not line:
                    stderr.seek(0)
                    raise RuntimeError(f"{variant}: the consumer stopped: {stderr.read()[-3000:]}")
                if line.startswith(MARK):
                    marks.append(json.loads(line[len(MARK) :]))
            first, last = marks
            stopped, stop_cpu = last["at"], last["cpu"]
            if model is not None:  # to the commit of the last message's write
                wait_for(child, lambda: is_written(kind, model, n), variant)
                stopped, stop_cpu = time.monotonic(), cpu_so_far(last["pid"])
            group_cpu = process_group_cpu(child.pid)
        finally:
            watchdog.cancel()
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    if timing == "start":
        ops, seconds, cpu = n, stopped - started, group_cpu
    else:
        ops, seconds, cpu = n - 1, stopped - first["at"], stop_cpu - first["cpu"]
    if model is not None:
        check_rows(kind, model, n)
        drop_table(model)
    if variant == "ours-idempotent":
        from django_messaging.kafka.models import ProcessedMessage

        assert ProcessedMessage.objects.filter(consumer=f"g-{name}").count() == n
        inbox_table(create=False)
    emit(ops, seconds, cpu)


def is_written(kind: str, model, n: int) -> bool:
    """Whether the write of the last of ``n`` messages is committed."""
    if kind == "insert":
        return model.objects.count() >= n
    return model.objects.filter(pk=(n - 1) % PRODUCT_ROWS, stock=n - 1).exists()


def check_rows(kind: str, model, n: int) -> None:
    if kind == "insert":
        assert model.objects.count() == n, model.objects.count()
        return
    assert model.objects.count() == PRODUCT_ROWS
    last = model.objects.get(pk=(n - 1) % PRODUCT_ROWS)  # the row of the last message
    assert last.stock == n - 1 and last.name == ("" if kind == "model" else f"product {n - 1}")
    if kind == "model":
        assert last.first_name == f"PRODUCT {n - 1}"


def process_group_cpu(pgid: int) -> float:
    """The CPU seconds (user + system, all threads, reaped children included) the processes
    of group ``pgid`` have used so far."""
    total = 0
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == pgid:
            total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def consume_child(kind: str, variant: str, db: str, name: str, table: str, sqlite_path: str):
    """The consuming process of :func:`consume_command`."""
    n = {"consume": CONSUME_N, "insert": INSERT_N}.get(kind, MODEL_N)
    if variant.startswith("raw"):
        consume_raw(name, Marks(n), backoff=variant == "raw-backoff")
        return
    setup_django(variant, db, sqlite_path)
    if variant.startswith("ours"):
        from django_messaging.kafka import kafka
    else:
        from django_kafka import kafka
    topic = topic_class(kind, variant, name, table, Marks(n))
    consumer = kafka.consumers()(consumer_class(variant, topic()))
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "kafka_consume", kafka.consumers.get_key(consumer)])


def consume_raw(name: str, clock, backoff: bool) -> None:
    """confluent-kafka alone: ``consume(num_messages=500)``, the same ``StringDeserializer`` on
    key and value, one ``store_offsets`` per batch; ``backoff``: with our consumers' default
    ``fetch.queue.backoff.ms`` instead of librdkafka's."""
    from confluent_kafka import Consumer
    from confluent_kafka.serialization import StringDeserializer

    key_deserializer = StringDeserializer()
    value_deserializer = StringDeserializer()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": f"g-{name}",
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            **FAST_GROUP,
            # our consumers' default (django_messaging.kafka.config.CONSUMER_DEFAULTS)
            **({"fetch.queue.backoff.ms": 20} if backoff else {}),
        }
    )
    consumer.subscribe([name])
    while True:
        msgs = consumer.consume(num_messages=500, timeout=0.5)
        for msg in msgs:
            if msg.error() is None:
                key_deserializer(msg.key(), None)
                value_deserializer(msg.value(), None)
                clock.tick()
        if msgs:
            consumer.store_offsets(message=msgs[-1])


def consume_in_process(variant: str, db: str) -> None:
    """Our consumer's loop (``Consumer.run_once``) in this process, for the observability
    rows: the clock starts at the first message."""
    setup_django("ours", db)
    key = variant.removeprefix("ours-")
    trace_flags = TRACED.get(key)
    if key in OBSERVED or trace_flags is not None:
        enable_observability(key if key in OBSERVED else "observed")
    name = fill_topic(*keyed_messages(OBSERVED_N), trace_flags=trace_flags)
    clock = Clock(OBSERVED_N)
    consumer = consumer_class("ours", readme_topic("ours", name, None, clock)())()
    consumer.start()
    while not clock.done():
        consumer.run_once()
    clock.stop()
    consumer.stop()
    clock.emit()


def insert_ceiling() -> None:
    """The handler's ``Model.objects.create`` alone, ``INSERT_N`` times in one transaction,
    without Kafka: what no consumer's loop around that handler can exceed."""
    setup_django("ours", "postgres")
    from django.db import transaction

    model = row_model(f"bench_kafka_ceiling_{uuid.uuid4().hex[:6]}")
    create_table(model)
    bodies, keys = keyed_messages(
        INSERT_N
    )  # the consumers' messages, decoded as their handler does
    values = [(key.decode(), body.decode()) for body, key in zip(bodies, keys, strict=True)]
    clock = Clock(INSERT_N)
    with transaction.atomic():
        for key, value in values:
            model.objects.create(key=key, value=value)
            clock.tick()
    clock.stop()
    check_rows("insert", model, INSERT_N)
    drop_table(model)
    clock.emit()


# --- produce ------------------------------------------------------------------------------


def produce_ours(n: int) -> None:
    setup_django("ours")
    from django_messaging.kafka import kafka
    from django_messaging.kafka.topic import TopicProducer

    class Orders(TopicProducer):
        name = fill_topic([])
        value_serializer = "json"

    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        Orders().produce(PAYLOAD)
    kafka.producer.flush(60)
    emit(n, time.perf_counter() - started, time.process_time() - cpu)


def produce_reference(n: int, variant: str) -> None:
    setup_django(variant)
    from confluent_kafka.serialization import Serializer
    from django_kafka import kafka
    from django_kafka.topic import TopicProducer

    class JSONSerializer(Serializer):
        def __call__(self, obj, ctx=None):
            return json.dumps(obj).encode()

    class Orders(TopicProducer):
        name = fill_topic([])
        value_serializer = JSONSerializer

    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        Orders().produce(PAYLOAD)
    kafka.producer.flush(60)
    emit(n, time.perf_counter() - started, time.process_time() - cpu)


def produce_raw(n: int) -> None:
    from confluent_kafka import Producer

    name = fill_topic([])
    producer = Producer({"bootstrap.servers": bootstrap(), "linger.ms": 5})
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        producer.produce(name, json.dumps(PAYLOAD).encode())
        producer.poll(0)
    producer.flush(60)
    emit(n, time.perf_counter() - started, time.process_time() - cpu)


# --- avro ---------------------------------------------------------------------------------


def avro_round_trip(variant: str, n: int) -> None:
    setup_django(variant)
    from confluent_kafka.serialization import MessageField

    if variant == "ours":
        from django_messaging.kafka.topic.avro import AvroTopic
    else:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from django_kafka import kafka
        from django_kafka.topic.avro import AvroTopic

        new_client = getattr(SchemaRegistryClient, "new_client", None)
        if new_client is not None:
            kafka.__dict__["schema_client"] = new_client({"url": "mock://bench"})
        else:  # confluent-kafka 2.7 has the mock client under its tests helpers
            from confluent_kafka.schema_registry.mock_schema_registry_client import (
                MockSchemaRegistryClient,
            )

            kafka.__dict__["schema_client"] = MockSchemaRegistryClient({"url": "mock://bench"})

    class Orders(AvroTopic):
        name = f"avro-{uuid.uuid4().hex[:8]}"
        value_schema = VALUE_SCHEMA

        def consume(self, msg):
            pass

    # warm-up for both: imports, the registry client, the schema registration
    warm = Orders()
    warm.deserialize(warm.serialize(RECORD, MessageField.VALUE, None), MessageField.VALUE, None)
    started = time.perf_counter()
    for i in range(n):
        topic = Orders()
        data = topic.serialize({**RECORD, "id": i}, MessageField.VALUE, None)
        assert topic.deserialize(data, MessageField.VALUE, None)["id"] == i
    emit(n, time.perf_counter() - started)


def main(scenario: str, variant: str, *options: str) -> None:
    if scenario in ("consume", "insert", "dbz", "model"):
        db, timing = (options + ("postgres", "steady")[len(options) :])[:2]
        if variant == "ceiling":
            insert_ceiling()
        else:
            consume_command(scenario, variant, db, timing)
    elif scenario == "consume-in-process":
        consume_in_process(variant, options[0])
    elif scenario == "consume-child":
        consume_child(variant, *options)
    elif scenario == "produce":
        if variant.startswith("reference"):
            produce_reference(PRODUCE_N, variant)
        else:
            {"ours": produce_ours, "raw": produce_raw}[variant](PRODUCE_N)
    elif scenario == "avro":
        avro_round_trip(variant, AVRO_N)


def _variants(
    scenario: str, *options: str, raw: bool = True, newest: bool = False
) -> list[Variant]:
    result = [
        Variant("django-messaging", [__file__, scenario, "ours", *options]),
        Variant(
            "django-kafka 0.5.13",
            [__file__, scenario, "reference", *options],
            requirements=REFERENCE,
        ),
    ]
    if newest:
        result.append(
            Variant(
                "django-kafka 5.1.2",
                [__file__, scenario, "reference-5", *options],
                requirements=REFERENCE_NEWEST,
            )
        )
    if raw:
        result.append(Variant("raw confluent-kafka", [__file__, scenario, "raw", *options]))
    return result


COMMAND_NOTE = (
    "Each library's `manage.py kafka_consume <consumer>` runs as its own process with the "
    "consumer registered as its README shows (`group.id`, `auto.offset.reset` earliest; "
    "django-kafka's README also sets `enable.auto.offset.store` False), on a topic filled "
    "beforehand (one partition); the consuming process notes the time at its first and last "
    "message. "
)
RUNNING_CLOCK = (
    "The clock runs from the first message to the last; CPU is the consuming process's over "
    "the same interval (librdkafka's threads included)."
)
WRITE_CLOCK = (
    "The clock runs from the first message to the commit of the last message's write, polled "
    "from the benchmark's process once the last message was handled (our consumer commits "
    "after a batch's last message, django-kafka's INSERT commits at once); CPU is the "
    "consuming process's over the same interval (librdkafka's threads included)."
)
START_CLOCK = (
    "The clock runs from the command's process start (`Popen`) to the last message: Django's "
    "start, the system checks, the group join and, for django-kafka, the fork of its worker "
    "pool are in it. CPU is every process of the command's, up to the last message. The "
    "group join alone takes about 1 s on the broker of these runs (Tansu answers a JoinGroup "
    "only after half the session timeout, 2 s here, in 1 s steps): a raw consumer process got "
    "its first message 1.2 s after its start, django-kafka 0.5.13's command and ours 1.3 s."
)


def _consume_scenario(db: str, timing: str) -> Scenario:
    options = (db, timing)
    variants = _variants("consume", *options, newest=True)
    variants.insert(
        1,
        Variant(
            "django-messaging, topic atomic = False",
            [__file__, "consume", "ours-nonatomic", *options],
        ),
    )
    variants.append(
        Variant(
            "raw confluent-kafka, fetch.queue.backoff.ms 20 (our consumers' default)",
            [__file__, "consume", "raw-backoff", *options],
        )
    )
    when = "from process start" if timing == "start" else "running from the first message"
    return Scenario(
        name=f"kafka: kafka_consume process, README handler, default settings, {db}, {when}",
        unit="msgs/s",
        ours="django-messaging",
        variants=variants,
        targets=[Target("django-kafka 0.5.13", 3.0), Target("raw confluent-kafka", 0.5)],
        note=(
            f"{CONSUME_N:,} keyed messages of 100 bytes. " + COMMAND_NOTE + "The handler is the "
            "README's: it deserializes key and value and does not touch the database. "
            "django-messaging runs with its defaults (`ATOMIC = True`: one transaction per "
            "batch, a savepoint per message only once it queries); the `atomic = False` row "
            "turns the transaction off for the topic. Raw: a process of its own running "
            "`consume(num_messages=500)`, the same `StringDeserializer` on key and value, one "
            "`store_offsets` per batch, librdkafka's defaults otherwise: once its prefetch queue "
            "is full it waits `fetch.queue.backoff.ms` (1 s) before it fetches again, about every "
            "100,000 messages here. Our consumers default to 20 ms; the last row runs the raw "
            "loop with that. " + (START_CLOCK if timing == "start" else RUNNING_CLOCK)
        ),
    )


def _observability_scenario(db: str) -> Scenario:
    variants = [Variant("django-messaging", [__file__, "consume-in-process", "ours", db])]
    variants += [
        Variant(f"django-messaging, {label}", [__file__, "consume-in-process", f"ours-{key}", db])
        for key, label in {**OBSERVED, **TRACED_LABELS}.items()
    ]
    return Scenario(
        name=f"kafka: consume loop in one process, metrics and tracing, README handler, {db}",
        unit="msgs/s",
        ours="django-messaging",
        variants=variants,
        # at most 15% more time per message with metrics and tracing on
        targets=[Target("django-messaging, metrics and tracing enabled", at_most=1.15)],
        note=(
            f"What metrics and tracing cost our consumer: {OBSERVED_N:,} keyed messages of 100 "
            "bytes, the README handler, our consumer's loop (`Consumer.run_once()`, as "
            "`kafka_consume` runs it) in the benchmark's own process, defaults otherwise; the "
            "clock starts at the first message. " + OBSERVABILITY_NOTE + " The *every message "
            "in a sampled (sampled-out) trace* rows give each message a `traceparent` of its own "
            "trace with the sampled flag set (clear): a span per message (none, the trace made "
            "current around the handler)."
        ),
    )


def _model_scenario(kind: str) -> Scenario:
    variants = _variants(kind, raw=False)
    if kind == "dbz":
        variants.insert(1, Variant("django-messaging, bulk = True", [__file__, kind, "ours-bulk"]))
    what = "DbzModelTopicConsumer" if kind == "dbz" else "ModelTopicConsumer (the README's)"
    return Scenario(
        name=f"kafka: kafka_consume process, {what.split()[0]} into PostgreSQL, default settings",
        unit="msgs/s",
        ours="django-messaging",
        variants=variants,
        targets=[Target("django-kafka 0.5.13", 3.0)],
        note=(
            f"{MODEL_N:,} JSON messages updating {PRODUCT_ROWS:,} rows through {what}, each an "
            "`update_or_create`. " + COMMAND_NOTE + "django-messaging with its defaults "
            "(`ATOMIC`: the batch's transaction, a savepoint per message; the "
            "`update_or_create` of this plain model is one `INSERT ... ON CONFLICT DO UPDATE` "
            "sent with the savepoint)"
            + (
                "; the `bulk = True` row takes the batched upsert path (one upsert per batch)"
                if kind == "dbz"
                else ""
            )
            + ". django-kafka 0.5.13 runs the same class per message. Each run checks the last "
            "row. " + WRITE_CLOCK
        ),
    )


_ALL_SCENARIOS = [
    _consume_scenario("sqlite", "steady"),
    _consume_scenario("postgres", "steady"),
    _consume_scenario("postgres", "start"),
    _observability_scenario("sqlite"),
    _observability_scenario("postgres"),
    Scenario(
        name="kafka: kafka_consume process, one INSERT per message, default settings, postgres",
        unit="msgs/s",
        ours="django-messaging",
        variants=[
            *_variants("insert", raw=False, newest=True),
            Variant(
                "django-messaging, topic idempotent = True", [__file__, "insert", "ours-idempotent"]
            ),
            Variant(
                "Model.objects.create alone in one transaction, no Kafka (the ceiling)",
                [__file__, "insert", "ceiling"],
            ),
        ],
        targets=[Target("django-kafka 0.5.13", 3.0)],
        note=(
            f"{INSERT_N:,} keyed messages; the README handler plus `Model.objects.create(key=..., "
            "value=...)`. " + COMMAND_NOTE + "django-messaging with its defaults (the batch's "
            "transaction, a savepoint per message sent with its INSERT); django-kafka "
            "autocommits each INSERT. The `idempotent = True` row also records each message's "
            "id (the ids of up to 64 messages in one INSERT ... RETURNING). Each run checks that "
            "every row is in. " + WRITE_CLOCK + " The ceiling row runs the handler's `create()` "
            "alone in the benchmark's process, every one in a single transaction and without "
            "Kafka: no consumer of this handler can be faster, so it bounds the ratio any "
            "consumer can reach here."
        ),
    ),
    Scenario(
        name="kafka: Topic.produce, json",
        unit="msgs/s",
        ours="django-messaging",
        variants=_variants("produce", newest=True),
        targets=[
            Target("django-kafka 0.5.13", 2.0),
            Target("raw confluent-kafka", 0.5),
        ],
        note=(
            f"{PRODUCE_N:,} messages, a new topic instance per message as in the documented "
            "`Topic1().produce(...)`, then one flush. django-kafka uses a json.dumps serializer "
            "class; raw: `json.dumps` + `Producer.produce` + `poll(0)`."
        ),
    ),
    Scenario(
        name="kafka: Avro serialize + deserialize round trip",
        unit="msgs/s",
        ours="django-messaging",
        variants=_variants("avro", raw=False),
        targets=[Target("django-kafka 0.5.13", 3.0)],
        note=f"{AVRO_N:,} six-field records through `AvroTopic.serialize/deserialize`, mock:// registry.",
    ),
    _model_scenario("dbz"),
    _model_scenario("model"),
]

#: ``BENCH_KAFKA_ONLY=consume loop,Avro`` runs only the scenarios whose name mentions one.
_ONLY = [w for w in os.environ.get("BENCH_KAFKA_ONLY", "").split(",") if w]
SCENARIOS = [s for s in _ALL_SCENARIOS if not _ONLY or any(w in s.name for w in _ONLY)]

if __name__ == "__main__":
    main(*sys.argv[1:])
