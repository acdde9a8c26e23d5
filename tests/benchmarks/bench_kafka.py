"""django-messaging-kafka against django-kafka 0.5.13 and 5.1.2 and raw confluent-kafka, same broker.

Each variant is this file run as ``python bench_kafka.py <scenario> <variant>``; the reference
variants run in their own virtualenvs with ``django-kafka==0.5.13`` (which pins confluent-kafka
2.7.0) and ``django-kafka==5.1.2``. Consume variants report process CPU time per message
(``time.process_time()``, librdkafka's threads included) beside throughput. Every consume variant reads its own freshly filled topic; the clock starts at the first
message, so the group join is not measured.
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
    emit,
    enable_observability,
)

REFERENCE = ["django-kafka==0.5.13", "Django>=5.2,<5.3", "psycopg[binary]>=3.1"]
REFERENCE_NEWEST = ["django-kafka==5.1.2", "Django>=5.2,<5.3", "psycopg[binary]>=3.1"]
#: ``BENCH_KAFKA_SMOKE=1``: a hundredth of the messages, to check that every variant runs
_SCALE = 100 if os.environ.get("BENCH_KAFKA_SMOKE") else 1
CONSUME_N = 200_000 // _SCALE
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


def setup_django(variant: str, db: str = "postgres") -> None:
    import django
    from django.conf import settings

    from tests import services

    if db == "sqlite":
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.mkdtemp(prefix="bench-kafka-"), "db.sqlite3"),
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


# --- consume loop -------------------------------------------------------------------------
#
# The handler is the README's: it deserializes key and value with the topic's deserializers
# (UTF-8 strings by default). "insert" adds one ORM INSERT per message.


def make_row_model(variant: str):
    from django.db import connection, models

    table = f"bench_kafka_row_{variant.replace('-', '_')}_{uuid.uuid4().hex[:6]}"

    class BenchRow(models.Model):
        key = models.CharField(max_length=100)
        value = models.TextField()

        class Meta:
            app_label = "bench_kafka"
            db_table = table

    with connection.schema_editor() as editor:
        editor.create_model(BenchRow)
    return BenchRow


def drop_row_model(model) -> None:
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.delete_model(model)


def consume_ours(n: int, variant: str, db: str, insert: bool) -> None:
    setup_django("ours", db)
    if variant.removeprefix("ours-") in OBSERVED:
        enable_observability(variant.removeprefix("ours-"))
    trace_flags = TRACED.get(variant.removeprefix("ours-"))
    if trace_flags is not None:
        enable_observability("observed")
    from confluent_kafka.serialization import MessageField

    from django_messaging.kafka.consumer import Consumer, Topics
    from django_messaging.kafka.topic import TopicConsumer

    row = make_row_model(variant) if insert else None
    name = fill_topic(*keyed_messages(n), trace_flags=trace_flags)
    clock = Clock(n)

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
        inbox_table(create=True)
    Readme.__abstractmethods__ = frozenset()

    class Bench(Consumer):
        topics = Topics(Readme())
        config = {"group.id": f"g-{name}", "auto.offset.reset": "earliest"}

    consumer = Bench()
    consumer.start()
    while not clock.done():
        consumer.run_once()
    clock.stop()
    consumer.stop()
    if row is not None:
        assert row.objects.count() == n
        drop_row_model(row)
    if variant == "ours-idempotent":
        from django_messaging.kafka.models import ProcessedMessage

        assert ProcessedMessage.objects.filter(consumer=f"g-{name}").count() == n
        inbox_table(create=False)
    clock.emit()


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


def consume_reference(n: int, variant: str, db: str, insert: bool) -> None:
    setup_django(variant, db)
    from confluent_kafka.serialization import MessageField
    from django_kafka.consumer import Consumer, Topics
    from django_kafka.topic import TopicConsumer

    row = make_row_model(variant) if insert else None
    name = fill_topic(*keyed_messages(n))
    clock = Clock(n)

    class Readme(TopicConsumer):
        def consume(self, msg):
            key = self.deserialize(msg.key(), MessageField.KEY, msg.headers())
            value = self.deserialize(msg.value(), MessageField.VALUE, msg.headers())
            if row is not None:
                row.objects.create(key=key, value=value)
            clock.tick()

    Readme.name = name
    Readme.__abstractmethods__ = frozenset()

    class Bench(Consumer):
        topics = Topics(Readme())
        config = {
            "group.id": f"g-{name}",
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
        }

    consumer = Bench()
    if variant == "reference-5":
        consumer.subscribe()  # 5.x: start() is the whole loop
    else:
        consumer.start()
    # Consumer.run()'s loop body, until every message is in
    while not clock.done():
        consumer.resume_partitions()
        msg = consumer.poll()
        if msg is not None:
            consumer.process_message(msg)
    clock.stop()
    consumer.stop()
    if row is not None:
        assert row.objects.count() == n
        drop_row_model(row)
    clock.emit()


def insert_ceiling(n: int, variant: str, db: str, insert: bool) -> None:
    """The handler's ``Model.objects.create`` alone, ``n`` times in one transaction, without
    Kafka: what no consumer's loop around that handler can exceed."""
    setup_django("ours", db)
    from django.db import transaction

    row = make_row_model(variant)
    bodies, keys = keyed_messages(n)  # the consumers' messages, decoded as their handler does
    values = [(key.decode(), body.decode()) for body, key in zip(bodies, keys, strict=True)]
    clock = Clock(n)
    with transaction.atomic():
        for key, value in values:
            row.objects.create(key=key, value=value)
            clock.tick()
    clock.stop()
    assert row.objects.count() == n
    drop_row_model(row)
    clock.emit()


def consume_raw(n: int, variant: str, db: str, insert: bool) -> None:
    from confluent_kafka import Consumer
    from confluent_kafka.serialization import StringDeserializer

    name = fill_topic(*keyed_messages(n))
    clock = Clock(n)
    key_deserializer = StringDeserializer()
    value_deserializer = StringDeserializer()

    def handle(msg):
        key_deserializer(msg.key(), None)
        value_deserializer(msg.value(), None)
        clock.tick()

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": f"g-{name}",
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            **FAST_GROUP,
        }
    )
    consumer.subscribe([name])
    while not clock.done():
        msgs = consumer.consume(num_messages=500, timeout=0.5)
        for msg in msgs:
            if msg.error() is None:
                handle(msg)
        if msgs:
            consumer.store_offsets(message=msgs[-1])
    clock.stop()
    consumer.close()
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


# --- model sync into PostgreSQL ------------------------------------------------------------


def model_sync(variant: str, n: int, kind: str) -> None:
    """``kind`` "dbz": a ``DbzModelTopicConsumer``; "model": the README's
    ``ModelTopicConsumer`` (``exclude_fields``, ``is_deletion``, ``get_lookup_kwargs``,
    ``transform_name``). ``variant`` "ours-bulk" sets ``bulk = True``."""
    setup_django(variant)
    from django.db import connection, models

    table = f"bench_kafka_product_{variant.replace('-', '_')}_{uuid.uuid4().hex[:6]}"

    class BenchProduct(models.Model):
        id = models.BigIntegerField(primary_key=True)
        name = models.CharField(max_length=100)
        first_name = models.CharField(max_length=100, default="")
        price = models.DecimalField(max_digits=10, decimal_places=2)
        stock = models.IntegerField(default=0)

        class Meta:
            app_label = "bench_kafka"
            db_table = table

    with connection.schema_editor() as editor:
        editor.create_model(BenchProduct)
    rows = 2_000
    if kind == "dbz":
        keys = [json.dumps({"id": i % rows}).encode() for i in range(n)]
    else:
        keys = [json.dumps(i % rows).encode() for i in range(n)]
    values = [
        json.dumps(
            {
                "id": i % rows,
                "name": f"product {i}",
                "price": f"{i % 500}.25",
                "stock": i,
                "__deleted": "false" if kind == "dbz" else False,
            }
        ).encode()
        for i in range(n)
    ]
    name = fill_topic(values, keys)
    clock = Clock(n)

    def readme_methods(cls):
        """The README's ModelTopicConsumer, the same for both libraries."""
        cls.exclude_fields = ["id"]
        cls.is_deletion = lambda self, model, key, value: value.pop("__deleted", False)
        cls.get_lookup_kwargs = lambda self, model, key, value: {"id": key}
        cls.transform_name = lambda self, model, field_name, value: ("first_name", value.upper())
        return cls

    if variant.startswith("ours"):
        from django_messaging.kafka.consumer import Consumer, Topics
        from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
        from django_messaging.kafka.topic.model import ModelTopicConsumer

        base = DbzModelTopicConsumer if kind == "dbz" else ModelTopicConsumer

        class Products(base):
            model = BenchProduct
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
        from django_kafka.consumer import Consumer, Topics
        from django_kafka.topic.debezium import DbzModelTopicConsumer
        from django_kafka.topic.model import ModelTopicConsumer

        class JSONDeserializer(StringDeserializer):
            def __call__(self, value, ctx=None):
                return None if value is None else json.loads(value)

        base = DbzModelTopicConsumer if kind == "dbz" else ModelTopicConsumer

        class Products(base):
            model = BenchProduct
            key_deserializer = JSONDeserializer
            value_deserializer = JSONDeserializer

            def consume(self, msg):
                super().consume(msg)
                clock.tick()

    if kind == "model":
        readme_methods(Products)
    Products.name = name
    Products.__abstractmethods__ = frozenset()
    config = {
        "group.id": f"g-{name}",
        "auto.offset.reset": "earliest",
        "enable.auto.offset.store": False,
    }
    consumer_cls = type("Bench", (Consumer,), {"topics": Topics(Products()), "config": config})
    consumer = consumer_cls()
    consumer.start()
    while not clock.done():
        if variant.startswith("ours"):
            consumer.run_once()
        else:
            consumer.resume_partitions()
            msg = consumer.poll()
            if msg is not None:
                consumer.process_message(msg)
    clock.stop()
    consumer.stop()
    assert BenchProduct.objects.count() == rows
    last = BenchProduct.objects.get(pk=(n - 1) % rows)  # the row of the last message
    assert last.stock == n - 1 and last.name == ("" if kind == "model" else f"product {n - 1}")
    if kind == "model":
        assert last.first_name == f"PRODUCT {n - 1}"
    with connection.schema_editor() as editor:
        editor.delete_model(BenchProduct)
    clock.emit()


def main(scenario: str, variant: str, *options: str) -> None:
    if scenario in ("consume", "insert"):
        db = options[0] if options else "postgres"
        run = consume_raw if variant == "raw" else consume_ours
        if variant == "ceiling":
            run = insert_ceiling
        if variant.startswith("reference"):
            run = consume_reference
        run(INSERT_N if scenario == "insert" else CONSUME_N, variant, db, scenario == "insert")
    elif scenario == "produce":
        if variant.startswith("reference"):
            produce_reference(PRODUCE_N, variant)
        else:
            {"ours": produce_ours, "raw": produce_raw}[variant](PRODUCE_N)
    elif scenario == "avro":
        avro_round_trip(variant, AVRO_N)
    elif scenario in ("dbz", "model"):
        model_sync(variant, MODEL_N, scenario)


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


def _consume_scenario(db: str) -> Scenario:
    variants = _variants("consume", db, newest=True)
    variants.insert(
        1,
        Variant(
            "django-messaging, topic atomic = False",
            [__file__, "consume", "ours-nonatomic", db],
        ),
    )
    variants[2:2] = [
        Variant(f"django-messaging, {label}", [__file__, "consume", f"ours-{key}", db])
        for key, label in {**OBSERVED, **TRACED_LABELS}.items()
    ]
    return Scenario(
        name=f"kafka: consume loop, README handler, default settings, {db}",
        unit="msgs/s",
        ours="django-messaging",
        variants=variants,
        targets=[
            Target("django-kafka 0.5.13", 3.0),
            Target("raw confluent-kafka", 0.5),
            # at most 15% more time per message with metrics and tracing on
            Target("django-messaging, metrics and tracing enabled", at_most=1.15),
        ],
        note=(
            f"{CONSUME_N:,} keyed messages of 100 bytes in one partition; the clock starts at the "
            "first message. The handler is the README's: it deserializes key and value and does "
            "not touch the database. django-messaging runs with its defaults (`ATOMIC = True`: "
            "one transaction per batch, a savepoint per message only once it queries); the "
            "`atomic = False` row turns the transaction off for the topic. Raw: "
            "`consume(num_messages=500)`, the same `StringDeserializer` on key and value, one "
            "`store_offsets` per batch. " + OBSERVABILITY_NOTE + " The *every message in a "
            "sampled (sampled-out) trace* rows give each message a `traceparent` of its own "
            "trace with the sampled flag set (clear): a span per message (none, the trace "
            "made current around the handler)."
        ),
    )


def _model_scenario(kind: str) -> Scenario:
    variants = _variants(kind, raw=False)
    if kind == "dbz":
        variants.insert(1, Variant("django-messaging, bulk = True", [__file__, kind, "ours-bulk"]))
    what = "DbzModelTopicConsumer" if kind == "dbz" else "ModelTopicConsumer (the README's)"
    return Scenario(
        name=f"kafka: {what.split()[0]} into PostgreSQL, default settings",
        unit="msgs/s",
        ours="django-messaging",
        variants=variants,
        targets=[Target("django-kafka 0.5.13", 3.0)],
        note=(
            f"{MODEL_N:,} JSON messages updating 2,000 rows through {what}, each an "
            "`update_or_create`; the clock starts at the first message. django-messaging with "
            "its defaults (`ATOMIC`: the batch's transaction, a savepoint per message; the "
            "`update_or_create` of this plain model is one `INSERT ... ON CONFLICT DO UPDATE` "
            "sent with the savepoint)"
            + (
                "; the `bulk = True` row takes the batched upsert path (one upsert per batch)"
                if kind == "dbz"
                else ""
            )
            + ". django-kafka 0.5.13 runs the same class per message. Each run checks the last row."
        ),
    )


_ALL_SCENARIOS = [
    _consume_scenario("sqlite"),
    _consume_scenario("postgres"),
    Scenario(
        name="kafka: consume loop, one INSERT per message, default settings, postgres",
        unit="msgs/s",
        ours="django-messaging",
        variants=[
            *_variants("insert", "postgres", raw=False, newest=True),
            Variant(
                "django-messaging, topic idempotent = True",
                [__file__, "insert", "ours-idempotent", "postgres"],
            ),
            Variant(
                "Model.objects.create alone in one transaction, no Kafka (the ceiling)",
                [__file__, "insert", "ceiling", "postgres"],
            ),
        ],
        targets=[Target("django-kafka 0.5.13", 3.0)],
        note=(
            f"{INSERT_N:,} keyed messages; the README handler plus `Model.objects.create(key=..., "
            "value=...)`. django-messaging with its defaults (the batch's transaction, a savepoint "
            "per message sent with its INSERT); django-kafka autocommits each INSERT. The "
            "`idempotent = True` row also records each message's id (the ids of up to 64 "
            "messages in one INSERT ... RETURNING). Each run checks that every row is in. The "
            "ceiling row runs the handler's `create()` alone, every one in a single transaction "
            "and without Kafka: no consumer of this handler can be faster, so it bounds the "
            "ratio any consumer can reach here."
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
