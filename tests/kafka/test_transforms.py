"""``django_messaging.kafka.topic.transforms``: Debezium value conversions for ``transform_<field>``."""

from __future__ import annotations

import datetime as dt

import pytest

from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
from django_messaging.kafka.topic.transforms import days_from_epoch_to_date
from tests.kafka.conftest import make_consumer, make_topic, run_until
from tests.kafka.test_model import send
from tests.project.kafka_app.models import Product

MISSING = object()


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_days_give_the_default(empty):
    """django-kafka returns ``default`` for ``None`` and for ``""`` (an empty column as some
    converters write it)."""
    assert days_from_epoch_to_date(empty) is None
    assert days_from_epoch_to_date(empty, default=MISSING) is MISSING


def test_days_count_from_the_epoch():
    assert days_from_epoch_to_date(0) == dt.date(1970, 1, 1)
    assert days_from_epoch_to_date(20000, default=MISSING) == dt.date(2024, 10, 4)
    assert days_from_epoch_to_date(-1) == dt.date(1969, 12, 31)


class Released(DbzModelTopicConsumer):
    model = Product

    def transform_released(self, model, field_name, field_value):
        return field_name, days_from_epoch_to_date(field_value)


@pytest.mark.django_db(transaction=True)
def test_an_empty_date_is_synced_as_null(create_topic, group, kafka_bootstrap):
    name = create_topic()
    send(
        kafka_bootstrap,
        name,
        [({"id": 1}, {"id": 1, "name": "a", "released": ""}), ({"id": 2}, {"id": 2, "name": "b"})],
    )
    consumer = make_consumer(group, make_topic(Released, name)())()
    run_until(consumer, lambda: Product.objects.filter(id=2).exists())
    assert list(Product.objects.order_by("id").values_list("id", "released")) == [
        (1, None),
        (2, None),
    ]
