"""ModelTopicConsumer and DbzModelTopicConsumer with Debezium-shaped messages on the broker."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from confluent_kafka import Producer
from django.utils import timezone

from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
from django_messaging.kafka.topic.model import ModelTopicConsumer
from django_messaging.kafka.topic.transforms import days_from_epoch_to_date
from tests.kafka.conftest import make_consumer, make_topic, run_until
from tests.project.kafka_app.models import Category, Customer, Product, SyncOrderReplica

pytestmark = pytest.mark.django_db(transaction=True)


def send(bootstrap: str, topic: str, records: list[tuple[object, object]]) -> None:
    """Produce JSON key/value pairs (``None`` value: a tombstone)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(
            topic,
            None if value is None else json.dumps(value).encode(),
            key=None if key is None else json.dumps(key).encode(),
        )
    assert producer.flush(10) == 0


class ProductConsumer(ModelTopicConsumer):
    model = Product
    exclude_fields = ["internal"]

    def is_deletion(self, model, key, value):
        return value.pop("__deleted", False)

    def get_lookup_kwargs(self, model, key, value):
        return {"id": key}

    def transform_title(self, model, field_name, field_value):
        return "name", field_value.upper()


def consume_all(group, topic, until, timeout=20.0):
    consumer = make_consumer(group, topic)()
    run_until(consumer, until, timeout=timeout)


def test_model_topic_consumer_creates_updates_and_deletes(create_topic, group, kafka_bootstrap):
    name = create_topic()
    Category.objects.create(id=7, name="tools")
    send(
        kafka_bootstrap,
        name,
        [
            (1, {"title": "hammer", "price": "9.50", "category_id": 7, "internal": "x", "junk": 1}),
            (2, {"title": "saw", "price": "20.00"}),
            (1, {"title": "big hammer", "price": "12.25", "category_id": 7}),
            (2, {"__deleted": True}),
            (3, {"title": "last"}),
        ],
    )
    topic = make_topic(ProductConsumer, name)()
    consume_all(group, topic, lambda: Product.objects.filter(id=3).exists())
    assert list(Product.objects.values_list("id", "name", "price", "category_id")) == [
        (1, "BIG HAMMER", Decimal("12.25"), 7),
        (3, "LAST", Decimal("0.00"), None),
    ]


class DbzProducts(DbzModelTopicConsumer):
    model = Product

    def transform_released(self, model, field_name, field_value):
        return field_name, days_from_epoch_to_date(field_value)


def test_debezium_flattened_events(create_topic, group, kafka_bootstrap):
    name = create_topic()
    send(
        kafka_bootstrap,
        name,
        [
            ({"id": 1}, {"id": 1, "name": "a", "price": "1.00", "released": 20000, "__op": "c"}),
            ({"id": 2}, {"id": 2, "name": "b", "__deleted": "false"}),
            ({"id": 3}, {"id": 3, "name": "c", "__deleted": False}),
            ({"id": 1}, {"id": 1, "name": "a2", "price": "2.00", "__deleted": "false"}),
            ({"id": 2}, {"id": 2, "name": "b", "__deleted": "true"}),  # delete event
            ({"id": 2}, None),  # its tombstone
            ({"id": 3}, None),  # a tombstone alone also deletes
            ({"id": 4}, {"id": 4, "name": "d", "__deleted": True}),  # deletion of an unknown row
            ({"id": 5}, {"id": 5, "name": "e"}),
        ],
    )
    consume_all(
        group, make_topic(DbzProducts, name)(), lambda: Product.objects.filter(id=5).exists()
    )
    assert list(Product.objects.values_list("id", "name", "price", "released")) == [
        (1, "a2", Decimal("2.00"), dt.date(2024, 10, 4)),
        (5, "e", Decimal("0.00"), None),
    ]


class Rerouted(DbzModelTopicConsumer):
    reroute_model_map = {"public.product": Product, "public.customer": Customer}


def test_debezium_rerouted_topic_uses_the_table_identifier(
    create_topic, group, kafka_bootstrap, read
):
    name = create_topic()
    table = "__dbz__physicalTableIdentifier"
    send(
        kafka_bootstrap,
        name,
        [
            ({"id": 1, table: "public.product"}, {"id": 1, "name": "p"}),
            ({"id": 1, table: "public.customer"}, {"id": 1, "first_name": "c"}),
            ({"id": 9, table: "public.unknown"}, {"id": 9}),
            ({"no_pk": 1}, {"id": 1, "name": "x"}),
            ({"id": 2, table: "public.customer"}, {"id": 2, "first_name": "d"}),
        ],
    )
    consume_all(group, make_topic(Rerouted, name)(), lambda: Customer.objects.filter(id=2).exists())
    assert list(Product.objects.values_list("id", "name")) == [(1, "p")]
    assert list(Customer.objects.values_list("id", "first_name")) == [(1, "c"), (2, "d")]
    dead = read(f"{group}.{name}.dlt", 2)
    assert sorted(json.loads(m.key()).get("id", 0) for m in dead) == [0, 9]


def test_reroute_without_map_and_missing_key_raise_clear_errors():
    topic = make_topic(DbzModelTopicConsumer, "x", model=Product)()
    with pytest.raises(DjangoKafkaError, match="reroute_model_map"):
        topic.get_model({"__dbz__physicalTableIdentifier": "public.t", "id": 1}, {})
    with pytest.raises(DjangoKafkaError, match="has no 'id' field"):
        topic.get_lookup_kwargs(Product, {"other": 1}, {})
    assert topic.is_deletion(Product, {}, {"__deleted": "TRUE"})
    assert not topic.is_deletion(Product, {}, {"__deleted": "false"})
    assert topic.is_deletion(Product, {}, None)


class BulkProducts(DbzModelTopicConsumer):
    model = Product
    bulk = True


def test_bulk_upsert_path_gives_the_same_rows_as_per_message_sync(
    create_topic, group, kafka_bootstrap, unique_name
):
    records = []
    for round_no in range(3):
        for i in range(1, 41):
            records.append(
                ({"id": i}, {"id": i, "name": f"n{i}-{round_no}", "price": f"{i}.{round_no}0"})
            )
    records += [({"id": 5}, None), ({"id": 6}, {"id": 6, "__deleted": "true"})]
    records += [({"id": 41}, {"id": 41, "name": "last"})]
    bulk_topic, single_topic = create_topic(), create_topic()
    send(kafka_bootstrap, bulk_topic, records)
    consume_all(
        group,
        make_topic(BulkProducts, bulk_topic)(),
        lambda: Product.objects.filter(id=41).exists(),
    )
    bulk_rows = list(Product.objects.order_by("id").values_list("id", "name", "price"))
    Product.objects.all().delete()
    send(kafka_bootstrap, single_topic, records)
    consume_all(
        unique_name("g2"),
        make_topic(DbzProducts, single_topic)(),
        lambda: Product.objects.filter(id=41).exists(),
    )
    single_rows = list(Product.objects.order_by("id").values_list("id", "name", "price"))
    assert bulk_rows == single_rows
    assert len(bulk_rows) == 39
    assert bulk_rows[0] == (1, "n1-2", Decimal("1.20"))


def test_bulk_batch_with_a_bad_message_falls_back_to_single_messages(
    create_topic, group, kafka_bootstrap, read
):
    name = create_topic()
    send(
        kafka_bootstrap,
        name,
        [
            ({"id": 1}, {"id": 1, "name": "ok"}),
            ({"nope": 1}, {"name": "bad"}),
            ({"id": 2}, {"id": 2, "name": "ok2"}),
        ],
    )
    consume_all(
        group, make_topic(BulkProducts, name)(), lambda: Product.objects.filter(id=2).exists()
    )
    assert sorted(Product.objects.values_list("name", flat=True)) == ["ok", "ok2"]
    assert len(read(f"{group}.{name}.dlt", 1)) == 1


@pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "bulk"])
@pytest.mark.parametrize("use_tz", [True, False], ids=["USE_TZ", "no-USE_TZ"])
def test_a_zoned_timestamp_is_stored_as_the_project_stores_datetimes(
    create_topic, group, kafka_bootstrap, settings, use_tz, bulk
):
    """Debezium's ``ZonedTimestamp`` (ISO 8601 with ``Z``) into a ``DateTimeField``: aware with
    ``USE_TZ``, local time in ``TIME_ZONE`` without it (SQLite and MySQL refuse an aware value
    then, and the message went to the dead letters)."""
    settings.USE_TZ = use_tz
    name = create_topic()

    class Lines(DbzModelTopicConsumer):
        model = SyncOrderReplica

    Lines.bulk = bulk
    send(
        kafka_bootstrap,
        name,
        [
            (
                {"id": 1},
                {"id": 1, "number": "A-1", "total": "1.00", "created_at": "2026-05-01T10:00:00Z"},
            ),
        ],
    )
    consume_all(
        group,
        make_topic(Lines, name)(),
        lambda: SyncOrderReplica.objects.filter(number="A-1").exists(),
    )
    moment = dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC)
    stored = SyncOrderReplica.objects.get(number="A-1").created_at
    assert stored == (moment if use_tz else timezone.make_naive(moment))
