"""``update_or_create`` of the model consumers in one statement (``topic/upsert.py``): the
same rows and the same ``(obj, created)`` as Django's, and Django's own where it would differ."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, models
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext

from django_messaging.kafka.topic.upsert import update_or_create
from tests.kafka.conftest import committed, make_consumer, make_topic, run_until
from tests.kafka.test_model import ProductConsumer, send
from tests.project.kafka_app.models import Category, Customer, Handled, Product

pytestmark = pytest.mark.django_db(transaction=True)

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the upsert is PostgreSQL's"
)

SEQUENCE = [
    ({"id": 1}, {"name": "hammer", "price": "9.50", "category_id": 7}),
    ({"id": 2}, {"name": "saw"}),
    ({"id": 1}, {"name": "big hammer", "price": Decimal("12.25"), "released": "2024-05-01"}),
    ({"id": 2}, {"id": 2, "name": "saw 2", "category": None}),
    ({"pk": 3}, {"name": "drill", "released": dt.date(2024, 1, 2)}),
    ({"id": 3}, {"name": "drill 2"}),
]


def _state(obj: models.Model) -> dict[str, object]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields} | {
        "adding": obj._state.adding,
        "db": obj._state.db,
    }


def test_the_same_rows_and_results_as_djangos_update_or_create():
    Category.objects.create(id=7, name="tools")
    ours, theirs = [], []
    for lookup, defaults in SEQUENCE:
        obj, created = update_or_create(Product, dict(lookup), dict(defaults))
        ours.append((_state(obj), created))
    rows = list(Product.objects.order_by("id").values())
    Product.objects.all().delete()
    for lookup, defaults in SEQUENCE:
        obj, created = Product.objects.update_or_create(**lookup, defaults=dict(defaults))
        theirs.append((_state(obj), created))
    assert list(Product.objects.order_by("id").values()) == rows
    assert ours == theirs
    assert [created for _, created in ours] == [True, True, False, False, True, False]


@postgres_only
def test_on_postgresql_one_statement_per_call():
    update_or_create(Product, {"id": 1}, {"name": "a"})
    with CaptureQueriesContext(connection) as queries:
        update_or_create(Product, {"id": 1}, {"name": "b"})
        update_or_create(Product, {"id": 2}, {"name": "c"})
    assert len(queries) == 2
    assert all("ON CONFLICT" in q["sql"] for q in queries.captured_queries)
    assert list(Product.objects.order_by("id").values_list("name", flat=True)) == ["b", "c"]


def test_a_pre_save_receiver_gets_djangos_update_or_create():
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.name)
        instance.name = instance.name.upper()

    pre_save.connect(receiver, sender=Product)
    try:
        update_or_create(Product, {"id": 1}, {"name": "a"})
        update_or_create(Product, {"id": 1}, {"name": "b"})
    finally:
        pre_save.disconnect(receiver, sender=Product)
    assert seen == ["a", "b"]
    assert Product.objects.get(id=1).name == "B"


def test_a_lookup_that_is_not_unique_gets_djangos_update_or_create():
    Customer.objects.create(id=1, first_name="ann", email="x")
    Customer.objects.create(id=2, first_name="ann", email="y")
    with pytest.raises(Customer.MultipleObjectsReturned):
        update_or_create(Customer, {"first_name": "ann"}, {"email": "z"})
    _obj, created = update_or_create(Handled, {"topic": "t"}, {"value": "v"})
    assert created and Handled.objects.get().value == "v"


def test_a_model_with_its_own_save_gets_djangos_update_or_create():
    calls = []

    class Saving(Product):
        class Meta:
            proxy = True
            app_label = "kafka_app"

        def save(self, *args, **kwargs):
            calls.append(self.name)
            super().save(*args, **kwargs)

    update_or_create(Saving, {"id": 1}, {"name": "a"})
    update_or_create(Saving, {"id": 1}, {"name": "b"})
    assert calls == ["a", "b"]


def test_a_message_failing_in_its_upsert_loses_only_its_own_row(
    create_topic, group, kafka_bootstrap, read
):
    """In the batch's transaction: the failing statement is rolled back to the message's
    savepoint, the neighbours' rows (before and after it) are kept, the message dead-lettered."""
    name = create_topic()
    records = [(i, {"title": f"p{i}", "price": "1.00"}) for i in range(6)]
    if connection.vendor == "postgresql":
        records[3] = (3, {"title": "x" * 300, "price": "1.00"})  # the statement fails
    else:  # SQLite does not check lengths: the value fails before its statement
        records[3] = (3, {"title": "p3", "price": "not a number"})
    records.append((1, {"title": "p1 again", "price": "2.00"}))
    send(kafka_bootstrap, name, records)
    topic = make_topic(ProductConsumer, name)()
    consumer = make_consumer(group, topic, batch_size=500)()
    run_until(consumer, lambda: read(f"{group}.{name}.dlt", 1, 0.2), timeout=30)
    assert list(Product.objects.order_by("id").values_list("id", "name", "price")) == [
        (0, "P0", Decimal("1.00")),
        (1, "P1 AGAIN", Decimal("2.00")),
        (2, "P2", Decimal("1.00")),
        (4, "P4", Decimal("1.00")),
        (5, "P5", Decimal("1.00")),
    ]
    assert committed(kafka_bootstrap, group, name) == [7]
