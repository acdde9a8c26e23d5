"""``ModelSync``: declarations, the Python source and sink against the broker, the registry."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from typing import Any, TypedDict

import pytest
from django.db import transaction
from django.utils import timezone

from django_messaging.core import suppress
from django_messaging.kafka import autodiscover, kafka, register_sync_consumers
from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.models import WaitingMessage
from django_messaging.kafka.models.model_sync import (
    DbzPostgresSource,
    ExcludeFields,
    IncludeFields,
    MessagePart,
    ModelSync,
    ModelSyncEnricherConsumer,
    PythonAvroSink,
    PythonAvroSource,
    PythonSink,
    PythonSinkTopic,
    PythonSource,
    Relation,
    SyncMethodTransform,
)
from django_messaging.kafka.relations import resolve
from django_messaging.kafka.topic.transforms import EnricherTransform, FieldTransform
from tests.kafka.conftest import _assign_start, produce_raw, run_many, run_until
from tests.project.kafka_app.models import (
    Customer,
    SkipItem,
    SyncLine,
    SyncOrder,
    SyncOrderReplica,
)

pytestmark = pytest.mark.django_db

CONSUMER = f"{__name__}.SyncConsumer"


class SyncConsumer(Consumer):
    """The consumer the Python sinks of these tests run on (``MODEL_SYNC_CONSUMER``)."""

    topics = Topics()
    config = {"group.id": "model-sync-tests", "auto.offset.reset": "earliest"}
    polling_freq = 0.2
    start = _assign_start


class EnrichConsumer(Consumer):
    config = {"group.id": "model-sync-enrich", "auto.offset.reset": "earliest"}
    polling_freq = 0.2
    start = _assign_start


class OtherConsumer(Consumer):
    config = {"group.id": "model-sync-other", "auto.offset.reset": "earliest"}
    polling_freq = 0.2
    start = _assign_start


@pytest.fixture
def sync_settings(settings: Any, syncs: None) -> Callable[..., None]:
    """MESSAGING['KAFKA'] with a schema registry and MODEL_SYNC_CONSUMER (plus ``keys``)."""

    def apply(**keys: Any) -> None:
        settings.MESSAGING = {
            **settings.MESSAGING,
            "KAFKA": {
                **settings.MESSAGING["KAFKA"],
                "SCHEMA_REGISTRY": {"url": "mock://model-sync"},
                "MODEL_SYNC_CONSUMER": CONSUMER,
                **keys,
            },
        }
        kafka.model_syncs.clear_topics()

    apply()
    return apply


def _order(number: str = "A-1", **fields: Any) -> SyncOrder:
    values: dict[str, Any] = dict(
        number=number,
        quantity=3,
        big=2**40,
        total=decimal.Decimal("99.95"),
        paid=True,
        ratio=0.5,
        ordered_on=dt.date(2026, 1, 31),
        created_at=timezone.now().replace(microsecond=654321),
        at_time=dt.time(8, 15, 0, 1),
        ref=uuid.uuid4(),
        wait=dt.timedelta(hours=5, microseconds=3),
        meta={"gift": True, "lines": [1, 2]},
        blob=b"\x01\x02",
        status="done",
        customer=Customer.objects.get_or_create(id=7, first_name="Grace")[0],
    )
    values.update(fields)
    return SyncOrder.objects.create(**values)


def _columns(instance: Any, skip: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    row = {}
    for field in type(instance)._meta.concrete_fields:
        if field.attname not in skip:
            value = getattr(instance, field.attname)
            row[field.attname] = bytes(value) if isinstance(value, memoryview) else value
    return row


# --- declarations ---------------------------------------------------------------------------


def test_a_sync_is_registered_when_defined_and_a_base_without_model_is_not(syncs: None) -> None:
    class Base(ModelSync):
        sink = PythonSink()

    class OrderSync(Base):
        model = SyncOrderReplica

    assert kafka.model_syncs[f"{__name__}.{OrderSync.__qualname__}"] is OrderSync
    assert Base not in kafka.model_syncs.syncs()
    with pytest.raises(DjangoKafkaError, match="already registered"):
        kafka.model_syncs.register(OrderSync)


@pytest.mark.parametrize(
    ("attrs", "error"),
    [
        ({"model": SyncOrder}, "sets neither source nor sink"),
        ({"model": dict, "sink": PythonSink()}, "must be a Django model class"),
        ({"model": SyncOrder, "sink": "python"}, "sink must be a Sink"),
        ({"model": SyncOrder, "sink": PythonSink(), "fields": ["id"]}, "IncludeFields"),
        (
            {"model": SyncOrder, "sink": PythonSink(), "fields": IncludeFields(["nope"])},
            "SyncOrder has no column 'nope'",
        ),
        (
            {"model": SyncOrder, "topic": "t", "source": PythonSource(), "sink": PythonSink()},
            "must inherit KafkaConnectSkipModel",
        ),
        (
            {"model": SkipItem, "source": PythonSource(), "sink": PythonSink()},
            "set topic",
        ),
        (
            {
                "model": SyncOrder,
                "source": PythonSource(),
                "enrich_transforms": [FieldTransform("x")],
            },
            r"set topic \(or enriched_topic\)",
        ),
    ],
)
def test_a_declaration_that_cannot_work_is_refused(
    syncs: None, attrs: dict[str, Any], error: str
) -> None:
    with pytest.raises(DjangoKafkaError, match=error):
        type("Broken", (ModelSync,), {"__module__": __name__, **attrs})
    assert "Broken" not in "".join(kafka.model_syncs)


def test_topic_names_and_columns(sync_settings: Callable[..., None]) -> None:
    class Raw(ModelSync):
        model = SyncLine
        sink = PythonSink()
        fields = IncludeFields(["sku"])

    assert Raw.get_topic() == "public.test_kafka_syncline"
    sync_settings(MODEL_SYNC_TOPIC_PREFIX="shop", MODEL_SYNC_DB_SCHEMA="sales")
    assert Raw.get_topic() == "shop.sales.test_kafka_syncline"
    assert list(Raw.columns()) == ["id", "sku_code"]  # the primary key is always carried

    class Named(ModelSync):
        model = SkipItem
        topic = "items"
        sink = PythonSink()
        fields = ExcludeFields(["counter"])

    assert Named.get_topic() == "items"
    assert list(Named.columns()) == ["id", "name"]  # kafka_skip is never data


# --- Python sink: consumer wiring -----------------------------------------------------------


def test_python_sinks_run_on_their_consumer_and_it_gets_registered(
    sync_settings: Callable[..., None],
) -> None:
    class Replicas(ModelSync):
        model = SyncOrderReplica
        topic = "replicas"
        sink = PythonAvroSink()

    class Lines(ModelSync):
        model = SyncLine
        topic = "lines"
        sink = PythonSink(consumer=f"{__name__}.OtherConsumer")

    assert SyncConsumer.topics.names == ["replicas"]
    assert OtherConsumer.topics.names == ["lines"]
    assert SyncConsumer.topics.get("replicas").model_sync is Replicas

    class Sub(SyncConsumer):  # a subclass is another consumer: the sinks stay on the parent
        pass

    assert Sub.topics.names == []
    register_sync_consumers()
    assert kafka.consumers[CONSUMER] is SyncConsumer
    assert kafka.consumers[f"{__name__}.OtherConsumer"] is OtherConsumer
    register_sync_consumers()  # again: nothing twice

    sync_settings(MODEL_SYNC_CONSUMER=None)
    assert SyncConsumer.topics.names == []  # read live: no consumer, no topic


def test_a_sink_naming_a_consumer_that_does_not_import_says_so(
    sync_settings: Callable[..., None],
) -> None:
    class Lost(ModelSync):
        model = SyncLine
        sink = PythonSink(consumer="tests.nowhere.Consumer")

    with pytest.raises(DjangoKafkaError, match=r"cannot import the consumer 'tests\.nowhere"):
        register_sync_consumers()


def test_autodiscover_imports_model_syncs_modules(
    sync_settings: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.project.kafka_app import model_syncs

    for key in list(kafka.model_syncs):
        if key.startswith(model_syncs.__name__):
            kafka.model_syncs.unregister(key)
    import sys

    monkeypatch.delitem(sys.modules, model_syncs.__name__)
    autodiscover()
    assert f"{model_syncs.__name__}.ProjectLineSync" in kafka.model_syncs


# --- Python source and sink through the broker ----------------------------------------------


def _published(bootstrap: str, topic: str, read: Callable[..., Any], count: int) -> list[Any]:
    """The ``count`` messages of ``topic``, checked to be all it holds: a marker produced
    after them must come next."""
    produce_raw(bootstrap, topic, [b"marker"])
    messages = read(topic, count + 1)
    assert [m.value() for m in messages[count:]] == [b"marker"], messages
    return messages[:count]


def _consume_until(condition: Callable[[], Any]) -> Any:
    return run_until(SyncConsumer(), condition)


def test_saved_rows_appear_in_the_other_model_through_avro(
    sync_settings: Callable[..., None],
    create_topic: Callable[..., str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    name = create_topic()

    class Out(ModelSync):
        model = SyncOrder
        topic = name
        source = PythonAvroSource()

    class In(ModelSync):
        model = SyncOrderReplica
        topic = name
        sink = PythonAvroSink()

    with django_capture_on_commit_callbacks(execute=True):
        order = _order()
    kafka.producer.flush(5)
    order = SyncOrder.objects.get(pk=order.pk)
    _consume_until(lambda: SyncOrderReplica.objects.filter(pk=order.pk).exists())
    replica = SyncOrderReplica.objects.get(pk=order.pk)
    assert _columns(replica) == _columns(order)

    with django_capture_on_commit_callbacks(execute=True):
        order.total = decimal.Decimal("0.01")
        order.meta = {"changed": "yes"}
        order.save()
    with django_capture_on_commit_callbacks(execute=True):
        SyncOrder.objects.get(pk=order.pk).delete()
    kafka.producer.flush(5)
    _consume_until(lambda: not SyncOrderReplica.objects.filter(pk=order.pk).exists())

    registered = kafka.schema_client.get_latest_version(f"{name}-value").schema.schema_str
    assert '"name":"SyncOrder"' in registered


def test_json_source_and_sink_with_fields_and_transforms(
    sync_settings: Callable[..., None],
    create_topic: Callable[..., str],
    read: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    name = create_topic()

    class Out(ModelSync):
        model = SyncOrder
        topic = name
        fields = IncludeFields(["number", "total", "created_at", "blob", "wait"])
        source = PythonSource()

    class In(ModelSync):
        model = SyncOrderReplica
        topic = name
        fields = ExcludeFields(["wait"])  # the sink writes only what its sync carries
        sink = PythonSink()
        consume_transforms = [FieldTransform("ratio", default=0.75)]

    with django_capture_on_commit_callbacks(execute=True):
        order = _order(number="J-1")
    kafka.producer.flush(5)
    [msg] = read(name, 1)
    assert msg.key() == b'{"id":%d}' % order.pk
    _consume_until(lambda: SyncOrderReplica.objects.filter(pk=order.pk).exists())
    replica = SyncOrderReplica.objects.get(pk=order.pk)
    assert (replica.number, replica.ratio) == ("J-1", 0.75)  # ratio: from the transform
    assert (replica.total, replica.created_at, bytes(replica.blob)) == (
        order.total,
        order.created_at,
        b"\x01\x02",
    )
    assert (replica.wait, replica.quantity, replica.meta) == (None, 1, {})  # not carried


def test_nothing_is_produced_when_suppressed_or_rolled_back(
    sync_settings: Callable[..., None],
    create_topic: Callable[..., str],
    read: Callable[..., Any],
    kafka_bootstrap: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    name = create_topic()

    class Out(ModelSync):
        model = SyncOrder
        topic = name
        source = PythonSource(key_fields=["number"])

    with django_capture_on_commit_callbacks(execute=True):
        with suppress():
            _order(number="quiet")
        with pytest.raises(RuntimeError), transaction.atomic():
            _order(number="rolled-back")
            raise RuntimeError
        _order(number="loud")
    kafka.producer.flush(5)
    messages = _published(kafka_bootstrap, name, read, 1)
    assert [m.key() for m in messages] == [b'{"number":"loud"}']


def test_two_way_sync_does_not_echo_what_the_sink_wrote(
    sync_settings: Callable[..., None],
    create_topic: Callable[..., str],
    kafka_bootstrap: str,
    read: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    name = create_topic()

    class Items(ModelSync):
        model = SkipItem
        topic = name
        source = PythonSource()
        sink = PythonSink()

    for pk in (501, 502):
        produce_raw(
            kafka_bootstrap,
            name,
            [b'{"id": %d, "name": "from-afar-%d", "counter": 4}' % (pk, pk)],
            key=b'{"id": %d}' % pk,
        )
    with django_capture_on_commit_callbacks(execute=True):
        _consume_until(lambda: SkipItem.objects.filter(pk__in=[501, 502]).count() == 2)
    item = SkipItem.objects.get(pk=501)
    assert (item.name, item.counter, item.kafka_skip) == ("from-afar-501", 4, True)

    with django_capture_on_commit_callbacks(execute=True):
        item.counter = 5
        item.save()  # a local change is published (kafka_skip back to False)
        SkipItem.objects.get(pk=502).delete()  # so is a local delete of a synced row
    kafka.producer.flush(5)
    published = _published(kafka_bootstrap, name, read, 4)[2:]  # not the synced rows
    assert [(m.key(), m.value()) for m in published] == [
        (b'{"id":501}', b'{"id":501,"name":"from-afar-501","counter":5}'),
        (b'{"id":502}', None),
    ]


def test_a_line_waits_for_its_order(
    sync_settings: Callable[..., None], create_topic: Callable[..., str], kafka_bootstrap: str
) -> None:
    name = create_topic()

    class Lines(ModelSync):
        model = SyncLine
        topic = name
        sink = PythonSink(relations=[Relation(Customer, "id", "customer_ref")])

    topic = SyncConsumer.topics.get(name)
    assert [(r.model, r.id_field, r.value_field) for r in topic.relations] == [
        (Customer, "id", "customer_ref"),
        (SyncOrderReplica, "id", "order_id"),  # a required foreign key, found on its own
    ]
    produce_raw(
        kafka_bootstrap, name, [b'{"id": 9, "order_id": 77, "sku_code": "S-9"}'], key=b'{"id": 9}'
    )
    _consume_until(lambda: WaitingMessage.objects.filter(topic=name).exists())
    assert not SyncLine.objects.exists()
    SyncOrderReplica.objects.create(id=77, number="B-77", total=1, created_at=timezone.now())
    consumer = SyncConsumer()
    try:
        assert resolve(consumer) == 1
    finally:
        consumer.close()
    assert SyncLine.objects.get(pk=9).sku == "S-9"


@pytest.mark.parametrize("use_tz", [True, False], ids=["USE_TZ", "no-USE_TZ"])
def test_a_debezium_record_is_applied_and_deleted(
    sync_settings: Callable[..., None],
    create_topic: Callable[..., str],
    kafka_bootstrap: str,
    settings: Any,
    use_tz: bool,
) -> None:
    """Without ``USE_TZ`` the record's ISO time with an offset is stored as local time in
    ``TIME_ZONE`` (SQLite and MySQL refuse an aware value then)."""
    settings.USE_TZ = use_tz
    name = create_topic()

    class Lines(ModelSync):
        model = SyncOrderReplica
        topic = name
        source = None
        sink = PythonSink()
        fields = IncludeFields(["number", "total", "created_at"])

    created = "2026-05-01T10:00:00.000001Z"
    produce_raw(
        kafka_bootstrap,
        name,
        [
            b'{"id": 3, "number": "D-3", "total": "12.30", "created_at": "%s", "__deleted": "false",'
            b' "paid": true}' % created.encode(),
        ],
        key=b'{"id": 3}',
    )
    _consume_until(lambda: SyncOrderReplica.objects.filter(pk=3).exists())
    row = SyncOrderReplica.objects.get(pk=3)
    assert (row.number, row.total, row.paid) == ("D-3", decimal.Decimal("12.30"), False)
    moment = dt.datetime(2026, 5, 1, 10, 0, 0, 1, tzinfo=dt.UTC)
    assert row.created_at == (moment if use_tz else timezone.make_naive(moment))
    produce_raw(kafka_bootstrap, name, [b'{"id": 3, "__deleted": "true"}'], key=b'{"id": 3}')
    _consume_until(lambda: not SyncOrderReplica.objects.filter(pk=3).exists())


def test_a_message_without_a_usable_key_is_an_error(sync_settings: Callable[..., None]) -> None:
    class Lines(ModelSync):
        model = SyncLine
        topic = "lines-key"
        sink = PythonSink()

    topic = Lines.sink.make_topic(Lines)  # type: ignore[union-attr]
    assert topic.get_lookup_kwargs(SyncLine, 4, {}) == {"pk": 4}
    with pytest.raises(DjangoKafkaError, match="has no column of SyncLine"):
        topic.get_lookup_kwargs(SyncLine, {"other": 1}, {})
    with pytest.raises(DjangoKafkaError, match="has no key"):
        topic.get_lookup_kwargs(SyncLine, None, {})


def test_system_checks_name_the_syncs_that_cannot_run(sync_settings: Callable[..., None]) -> None:
    from django_messaging.kafka.checks import check_model_syncs

    class Orders(ModelSync):
        model = SyncOrder
        source = DbzPostgresSource()

    class Lines(ModelSync):
        model = SyncLine
        sink = PythonSink()

    class Lost(ModelSync):
        model = SyncOrderReplica
        sink = PythonSink(consumer="tests.nowhere.Consumer")

    sync_settings(MODEL_SYNC_CONSUMER=None)
    messages = {m.id: m.msg for m in check_model_syncs()}
    assert set(messages) == {"messaging.E101", "messaging.E102", "messaging.E103"}
    assert "Orders.source joins no connector" in messages["messaging.E102"]
    assert "Lines.sink has no consumer" in messages["messaging.E101"]
    assert "cannot import the consumer 'tests.nowhere.Consumer'" in messages["messaging.E103"]
    assert kafka.model_syncs.sources_for(SyncConsumer) == []


# --- enrichment -----------------------------------------------------------------------------


class Channel(TypedDict):
    channel: str


@pytest.fixture
def enrich_topics(
    sync_settings: Callable[..., None],
    create_topic: Callable[..., str],
    unique_name: Callable[[str], str],
) -> tuple[str, str]:
    """The raw topic a source writes (under a topic prefix of the test's own) and the public
    one an enricher writes."""
    prefix = unique_name("raw").replace("-", "_")
    sync_settings(MODEL_SYNC_TOPIC_PREFIX=prefix)
    return create_topic(f"{prefix}.public.test_kafka_syncorder"), create_topic()


def _lower_number(value: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"number": value["number"].lower(), "channel": "web"}


def test_an_enricher_stands_between_the_source_and_the_sink(
    enrich_topics: tuple[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    raw, public = enrich_topics

    class Orders(ModelSync):
        model = SyncOrder
        topic = public
        source = PythonAvroSource()
        enrich_transforms = [
            EnricherTransform(_lower_number, overwrite=True),
            SyncMethodTransform("ratio"),
        ]
        enrich_schema = Channel
        enricher_consumer = f"{__name__}.EnrichConsumer"

        @staticmethod
        def enrich_ratio(key: Any, value: dict[str, Any]) -> float:
            return value["ratio"] * 2

    class Replicas(ModelSync):
        model = SyncOrderReplica
        topic = public
        sink = PythonAvroSink()

    assert (Orders.source_topic(), Orders.get_topic()) == (raw, public)
    assert EnrichConsumer.topics.names == [raw]
    with django_capture_on_commit_callbacks(execute=True):
        order = _order(number="WEB-1")
    kafka.producer.flush(5)
    run_many(
        [EnrichConsumer(), SyncConsumer()],
        lambda: SyncOrderReplica.objects.filter(pk=order.pk).exists(),
    )
    replica = SyncOrderReplica.objects.get(pk=order.pk)
    assert (replica.number, replica.ratio) == ("web-1", 1.0)
    schema = kafka.schema_client.get_latest_version(f"{public}-value").schema.schema_str
    assert '"name":"channel"' in schema and '"name":"__deleted"' in schema


def test_an_enricher_rewrites_the_key_and_the_sink_looks_rows_up_by_it(
    enrich_topics: tuple[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    public = enrich_topics[1]

    class Orders(ModelSync):
        model = SyncOrder
        topic = public
        source = PythonSource()
        enrich_transforms = [
            SyncMethodTransform("id", target="number", apply_to=MessagePart.KEY),
            FieldTransform("id", drop=True),  # the value's id stays behind
        ]
        enricher_consumer = f"{__name__}.EnrichConsumer"

        @staticmethod
        def enrich_id(key: Any, value: dict[str, Any] | None) -> str:
            return f"N-{key['id']}"  # of a tombstone too (its value is None)

    class Replicas(ModelSync):
        model = SyncOrderReplica
        topic = public
        fields = ExcludeFields(["number"])
        sink = PythonSink()

    with django_capture_on_commit_callbacks(execute=True):
        order = _order()
    kafka.producer.flush(5)
    SyncOrderReplica.objects.create(
        id=order.pk + 1000, number=f"N-{order.pk}", total=1, created_at=timezone.now()
    )
    run_many(
        [EnrichConsumer(), SyncConsumer()],
        lambda: SyncOrderReplica.objects.filter(total=order.total).exists(),
    )
    assert list(SyncOrderReplica.objects.values_list("id", "number")) == [
        (order.pk + 1000, f"N-{order.pk}")  # found by the number in the key, not created
    ]
    with django_capture_on_commit_callbacks(execute=True):
        order.delete()
    kafka.producer.flush(5)
    run_many([EnrichConsumer(), SyncConsumer()], lambda: not SyncOrderReplica.objects.exists())


class NumberKey(TypedDict):
    number: str


def test_an_avro_enricher_writes_the_key_fields_its_transforms_add(
    enrich_topics: tuple[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    public = enrich_topics[1]

    class Orders(ModelSync):
        model = SyncOrder
        topic = public
        source = PythonAvroSource()
        enrich_transforms = [
            SyncMethodTransform("id", "number", replace=False, apply_to=MessagePart.KEY)
        ]
        enrich_key_schema = NumberKey
        enricher_consumer = f"{__name__}.EnrichConsumer"

        @staticmethod
        def enrich_id(key: Any, value: dict[str, Any] | None) -> str:
            return f"N-{key['id']}"

    class Replicas(ModelSync):
        model = SyncOrderReplica
        topic = public
        fields = ExcludeFields(["number"])
        sink = PythonAvroSink()

    with django_capture_on_commit_callbacks(execute=True):
        order = _order()
    kafka.producer.flush(5)
    # the key {"id", "number"} finds the row by both columns
    SyncOrderReplica.objects.create(
        id=order.pk, number=f"N-{order.pk}", total=1, created_at=timezone.now()
    )
    run_many(
        [EnrichConsumer(), SyncConsumer()],
        lambda: SyncOrderReplica.objects.filter(total=order.total).exists(),
    )
    schema = kafka.schema_client.get_latest_version(f"{public}-key").schema.schema_str
    assert '"name":"id"' in schema and '"name":"number"' in schema


def test_the_default_enricher_consumer(sync_settings: Callable[..., None]) -> None:
    class Orders(ModelSync):
        model = SyncOrder
        topic = "orders-public"
        source = PythonSource()
        enrich_transforms = [FieldTransform("ratio", drop=True)]

    enricher = ModelSyncEnricherConsumer.topics.get("public.test_kafka_syncorder")
    assert (enricher.name, enricher.reproduce_name) == (
        "public.test_kafka_syncorder",
        "orders-public",
    )
    assert (
        ModelSyncEnricherConsumer.build_config()["group.id"]
        == "django-messaging.model-sync-enricher"
    )
    sync_settings(MODEL_SYNC_ENRICHER_GROUP="shop-enricher")
    assert ModelSyncEnricherConsumer.build_config()["group.id"] == "shop-enricher"
    register_sync_consumers()
    assert (
        kafka.consumers[
            "django_messaging.kafka.models.model_sync.enricher.ModelSyncEnricherConsumer"
        ]
        is ModelSyncEnricherConsumer
    )


def test_a_relation_with_fk_sets_the_row_and_a_sync_method_computes_a_field(
    sync_settings: Callable[..., None], create_topic: Callable[..., str], kafka_bootstrap: str
) -> None:
    name = create_topic()

    class Lines(ModelSync):
        model = SyncLine
        topic = name
        sink = PythonSink(
            relations=[Relation(SyncOrderReplica, "number", "order_number", fk="order")]
        )
        consume_transforms = [SyncMethodTransform("sku_code")]

        @staticmethod
        def consume_sku_code(key: Any, value: dict[str, Any]) -> str:
            return f"{value['sku_code']}-{key['id']}".lower()

    topic = SyncConsumer.topics.get(name)
    assert [(r.model, r.id_field, r.value_field) for r in topic.relations] == [
        (SyncOrderReplica, "number", "order_number")  # replaces the one found for `order`
    ]
    produce_raw(
        kafka_bootstrap,
        name,
        [b'{"id": 10, "order_id": 1, "order_number": "B-88", "sku_code": "X"}'],
        key=b'{"id": 10}',
    )
    _consume_until(lambda: WaitingMessage.objects.filter(topic=name).exists())
    order = SyncOrderReplica.objects.create(
        id=88, number="B-88", total=1, created_at=timezone.now()
    )
    consumer = SyncConsumer()
    try:
        assert resolve(consumer) == 1
    finally:
        consumer.close()
    line = SyncLine.objects.get(pk=10)
    assert (line.order_id, line.sku) == (order.pk, "x-10")


def test_a_relation_lookup_finds_the_row_by_a_transformed_key(
    sync_settings: Callable[..., None], create_topic: Callable[..., str], kafka_bootstrap: str
) -> None:
    name = create_topic()

    class Lines(ModelSync):
        model = SyncLine
        topic = name
        sink = PythonSink(
            relations=[
                Relation(SyncOrderReplica, "number", "order", fk="order", lookup="order__number")
            ]
        )
        consume_transforms = [SyncMethodTransform("order", apply_to=MessagePart.KEY)]

        @staticmethod
        def consume_order(key: Any, value: dict[str, Any]) -> str:
            return str(key["order"]).upper()  # the key names the row: one line per order

    order = SyncOrderReplica.objects.create(id=5, number="B-5", total=1, created_at=timezone.now())
    key = b'{"order": "b-5"}'
    produce_raw(kafka_bootstrap, name, [b'{"id": 11, "order": "B-5", "sku_code": "X"}'], key=key)
    _consume_until(lambda: SyncLine.objects.filter(order=order, sku="X").exists())
    produce_raw(kafka_bootstrap, name, [b'{"id": 11, "order": "B-5", "sku_code": "Y"}'], key=key)
    _consume_until(lambda: SyncLine.objects.filter(order=order, sku="Y").exists())
    assert list(SyncLine.objects.values_list("id", "order_id", "sku")) == [(11, 5, "Y")]
    produce_raw(kafka_bootstrap, name, [None], key=key)  # the tombstone finds it the same way
    _consume_until(lambda: not SyncLine.objects.exists())


def test_a_relation_lookup_is_refused_by_the_batched_upsert(
    sync_settings: Callable[..., None],
) -> None:
    class Lines(ModelSync):
        model = SyncLine
        topic = "lines-by-order"
        sink = PythonSink()

    class BulkLines(PythonSinkTopic):
        bulk = True

    relation = Relation(SyncOrderReplica, "number", "order", fk="order", lookup="order__number")
    with pytest.raises(DjangoKafkaError, match=r"Relation with lookup.*bulk = False"):
        BulkLines(Lines, [relation])
    assert BulkLines(Lines, [Relation(SyncOrderReplica, "number", "order", fk="order")]).bulk
