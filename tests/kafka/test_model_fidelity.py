"""Model sync as a project migrating from django-kafka 0.5.13 uses it: ``kafka_skip`` on rows
written from Kafka, ``sync()``'s return value, and ``get_defaults`` receiving the transformed
value. Messages go through the broker; a change-capture trigger shows what a connector reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
from django_messaging.kafka.topic.model import ModelTopicConsumer
from tests.kafka.cdc import changes, create_triggers, drop_triggers
from tests.kafka.conftest import make_consumer, make_topic, run_until
from tests.kafka.test_model import send
from tests.project.kafka_app.models import Product, SkipItem

pytestmark = pytest.mark.django_db(transaction=True)

SKIP_TABLE = SkipItem._meta.db_table


@pytest.fixture
def captured() -> Iterator[None]:
    create_triggers([SKIP_TABLE])
    try:
        yield
    finally:
        drop_triggers([SKIP_TABLE])


class SkipItems(ModelTopicConsumer):
    """The seed's ModelTopicConsumer example, on a model with ``kafka_skip``."""

    model = SkipItem

    def is_deletion(self, model, key, value):
        return value.pop("__deleted", False)

    def get_lookup_kwargs(self, model, key, value):
        return {"id": key}


class DbzSkipItems(DbzModelTopicConsumer):
    model = SkipItem


class BulkDbzSkipItems(DbzModelTopicConsumer):
    model = SkipItem
    bulk = True


def _consume(group, topic, until):
    run_until(make_consumer(group, topic)(), until, timeout=20)


def test_rows_synced_from_kafka_are_not_published_again(
    captured, create_topic, group, kafka_bootstrap
):
    """django-kafka 0.5.13's ``get_defaults`` adds ``kafka_skip=True`` for a
    ``KafkaConnectSkipModel``: a row written by the consumer must not be published again by the
    change-data-capture connector, or two synced systems echo each change back and forth."""
    name = create_topic()
    send(
        kafka_bootstrap,
        name,
        [
            (1, {"name": "a", "counter": 1}),
            (2, {"name": "b"}),
            (1, {"name": "a", "counter": 2}),
            (2, {"__deleted": True}),
            (3, {"name": "c"}),
        ],
    )
    _consume(group, make_topic(SkipItems, name)(), lambda: SkipItem.objects.filter(id=3).exists())

    assert changes(SKIP_TABLE) == [
        ("i", 1, True),
        ("i", 2, True),
        ("u", 1, True),
        ("d", 2, True),
        ("i", 3, True),
    ]
    # the model's own writes still publish
    item = SkipItem.objects.get(id=1)
    item.counter = 5
    item.save()
    assert changes(SKIP_TABLE)[-1] == ("u", 1, False)


@pytest.mark.parametrize("consumer", [DbzSkipItems, BulkDbzSkipItems])
def test_debezium_rows_synced_from_kafka_are_not_published_again(
    consumer, captured, create_topic, group, kafka_bootstrap
):
    """The same for ``DbzModelTopicConsumer`` (per message and ``bulk = True``)."""
    name = create_topic()
    SkipItem.objects.create(id=9, name="here before")
    send(
        kafka_bootstrap,
        name,
        [
            ({"id": 1}, {"id": 1, "name": "a", "__deleted": "false"}),
            ({"id": 9}, {"id": 9, "name": "renamed"}),
            ({"id": 1}, {"id": 1, "name": "a", "__deleted": "true"}),
            ({"id": 1}, None),
        ],
    )
    send(kafka_bootstrap, name, [({"id": 4}, {"id": 4, "name": "last"})])
    _consume(group, make_topic(consumer, name)(), lambda: SkipItem.objects.filter(id=4).exists())

    recorded = changes(SKIP_TABLE)
    assert recorded[0] == ("i", 9, False)  # written here: published
    synced = recorded[1:]
    assert {op for op, _, _ in synced} >= {"u", "i"}
    assert ("d", 1, True) in synced or not any(row == 1 for _, row, _ in synced)
    assert all(skip for _, _, skip in synced), synced
    assert sorted(SkipItem.objects.values_list("id", "name")) == [(4, "last"), (9, "renamed")]


class Products(ModelTopicConsumer):
    model = Product

    def is_deletion(self, model, key, value):
        return value.pop("__deleted", False)

    def get_lookup_kwargs(self, model, key, value):
        return {"id": key}

    def transform_title(self, model, field_name, field_value):
        return "name", field_value.upper()


def test_sync_returns_the_result_of_update_or_create():
    """django-kafka 0.5.1: ``ModelTopicConsumer.sync`` returns ``update_or_create()``'s
    ``(obj, created)``; a deletion returns ``None``."""
    topic = make_topic(Products, "products")()

    created = topic.sync(Product, 1, {"title": "saw", "price": "2.00"})
    updated = topic.sync(Product, 1, {"title": "big saw"})
    deleted = topic.sync(Product, 1, {"__deleted": True})

    assert isinstance(created, tuple) and isinstance(updated, tuple)
    obj, was_created = created
    assert (type(obj), obj.pk, obj.name, was_created) == (Product, 1, "SAW", True)
    obj, was_created = updated
    assert (obj.pk, obj.name, was_created) == (1, "BIG SAW", False)
    assert deleted is None
    assert not Product.objects.exists()


class StampedProducts(Products):
    """``get_defaults`` overridden as in django-kafka, where it receives the value after
    ``transform()`` (``title`` is already ``name``)."""

    def get_defaults(self, model, value):
        return {"name": f"{value['name']}!", "price": value.get("price", "1.00")}


def test_get_defaults_receives_the_transformed_value(create_topic, group, kafka_bootstrap):
    name = create_topic()
    send(kafka_bootstrap, name, [(1, {"title": "hammer"}), (2, {"title": "saw", "price": "3"})])
    _consume(
        group, make_topic(StampedProducts, name)(), lambda: Product.objects.filter(id=2).exists()
    )
    assert sorted(Product.objects.values_list("id", "name")) == [(1, "HAMMER!"), (2, "SAW!")]


def test_exclude_fields_may_be_none():
    """django-kafka's default ``exclude_fields`` is ``None``; projects that spell it out keep
    syncing every field."""
    topic = make_topic(Products, "products", exclude_fields=None)()
    _obj, created = topic.sync(Product, 5, {"title": "axe", "price": "4.00"})
    assert created
    assert Product.objects.values_list("name", "price").get(pk=5) == ("AXE", 4)
