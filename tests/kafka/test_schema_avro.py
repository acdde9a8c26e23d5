"""``AvroSchema``: record schemas from models and TypedDicts, and rows through them."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import uuid
from typing import NotRequired, TypedDict

import fastavro
import pytest
from confluent_kafka.serialization import MessageField
from django.db import models
from django.test import override_settings
from django.utils import timezone

from django_messaging.kafka import kafka
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.schema.avro import AvroSchema, from_avro, to_avro
from django_messaging.kafka.schema.fields import UnsupportedType
from django_messaging.kafka.topic.avro import AvroTopic
from tests.kafka.conftest import make_consumer, make_topic, run_until
from tests.project.kafka_app.models import Customer, SyncLine, SyncOrder

pytestmark = pytest.mark.django_db


class Extras(TypedDict):
    score: int
    label: str | None
    tags: list[str]
    weights: dict[str, float]
    seen_at: dt.datetime
    note: NotRequired[str]


def _order(**fields: object) -> SyncOrder:
    customer = Customer.objects.create(id=41, first_name="Ada")
    values = dict(
        number="A-1",
        quantity=3,
        big=2**40,
        total=decimal.Decimal("1234.50"),
        paid=True,
        ratio=0.25,
        ordered_on=dt.date(2026, 2, 28),
        created_at=timezone.now().replace(microsecond=123456),
        at_time=dt.time(23, 59, 58, 654321),
        ref=uuid.uuid4(),
        wait=dt.timedelta(days=2, microseconds=7),
        meta={"b": [1, 2], "a": {"x": None}},
        blob=b"\x00\xffraw",
        status="done",
        customer=customer,
    )
    values.update(fields)
    return SyncOrder.objects.create(**values)


def test_types_of_model_fields() -> None:
    schema = AvroSchema.from_model(SyncOrder).to_dict()
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert schema["name"] == "SyncOrder" and schema["namespace"] == "test_kafka"
    assert types == {
        "id": "long",
        "number": "string",
        "quantity": "int",
        "big": ["null", "long"],
        "total": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        "paid": "boolean",
        "ratio": ["null", "double"],
        "ordered_on": ["null", {"type": "int", "logicalType": "date"}],
        "created_at": {"type": "long", "logicalType": "timestamp-micros"},
        "at_time": ["null", {"type": "long", "logicalType": "time-micros"}],
        "ref": ["null", {"type": "string", "logicalType": "uuid"}],
        "wait": ["null", "long"],
        "meta": "string",
        "blob": ["null", "bytes"],
        "status": "string",  # choices keep the type of their values
        "customer_id": ["null", "long"],  # a foreign key: its column, the target's type
    }
    defaults = {f["name"]: f["default"] for f in schema["fields"] if "default" in f}
    # nullable: default null; plain constant defaults kept; callables (dict) not
    assert defaults == {
        "quantity": 1,
        "big": None,
        "paid": False,
        "ratio": None,
        "ordered_on": None,
        "at_time": None,
        "ref": None,
        "wait": None,
        "blob": None,
        "status": "new",
        "customer_id": None,
    }
    fastavro.parse_schema(schema)


def test_fields_only_or_all_but_and_columns() -> None:
    only = AvroSchema.from_model(SyncOrder, fields=["pk", "number", "customer"])
    assert only.field_names == ["id", "number", "customer_id"]
    rest = AvroSchema.from_model(SyncOrder, fields=["blob", "meta"], exclude=True)
    assert "blob" not in rest.field_names and "meta" not in rest.field_names
    assert len(rest.field_names) == 14
    # a db_column names the record field, as Debezium does
    assert AvroSchema.from_model(SyncLine).field_names == ["id", "order_id", "sku_code"]
    with pytest.raises(DjangoKafkaError, match="no column 'nope'"):
        AvroSchema.from_model(SyncOrder, fields=["nope"])


def test_key_schema() -> None:
    assert AvroSchema.key_from_model(SyncLine).to_dict() == {
        "type": "record",
        "name": "SyncLineKey",
        "namespace": "test_kafka",
        "fields": [{"name": "id", "type": "long"}],
    }
    key = AvroSchema.key_from_model(SyncLine, ["order", "sku"], namespace="shop", name="K")
    assert key.to_dict()["fields"] == [
        {"name": "order_id", "type": "long"},
        {"name": "sku_code", "type": "string"},
    ]
    assert key.full_name == "shop.K"


def test_typed_dict_and_extend() -> None:
    extra = AvroSchema.from_type(Extras, namespace="x")
    assert extra.to_dict() == {
        "type": "record",
        "name": "Extras",
        "namespace": "x",
        "fields": [
            {"name": "score", "type": "long"},
            {"name": "label", "type": ["null", "string"], "default": None},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "weights", "type": {"type": "map", "values": "double"}},
            {"name": "seen_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "note", "type": "string"},
        ],
    }
    joined = AvroSchema.from_model(SyncLine).extend(Extras)
    assert joined.field_names == ["id", "order_id", "sku_code", *extra.field_names]
    assert AvroSchema.from_json(joined.to_json()) == joined
    fastavro.parse_schema(joined.to_dict())


def test_unsupported_types_say_what_to_do() -> None:
    class Money(TypedDict):
        amount: decimal.Decimal

    with pytest.raises(UnsupportedType, match="precision"):
        AvroSchema.from_type(Money)

    class Odd(TypedDict):
        either: int | str

    with pytest.raises(UnsupportedType, match=r"only 'T \| None'"):
        AvroSchema.from_type(Odd)

    class Point(models.Field):  # type: ignore[type-arg]
        pass

    point = Point()
    point.set_attributes_from_name("where")
    point.model = SyncLine
    from django_messaging.kafka.schema.fields import django_field_to_avro

    with pytest.raises(UnsupportedType, match=r"SyncLine\.where is a Point"):
        django_field_to_avro(point)


def _through_fastavro(schema: AvroSchema, datum: dict) -> dict:
    buffer = io.BytesIO()
    parsed = fastavro.parse_schema(schema.to_dict())
    fastavro.schemaless_writer(buffer, parsed, datum)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed, None)


def _decoded(schema: AvroSchema, datum: dict) -> dict:
    fields = schema.model_fields
    return {name: from_avro(fields[name], value) for name, value in datum.items()}


def _row(instance: models.Model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_a_row_round_trips_through_fastavro() -> None:
    order = SyncOrder.objects.get(pk=_order().pk)  # as the database gives it back
    schema = AvroSchema.from_model(SyncOrder)
    back = _decoded(schema, _through_fastavro(schema, schema.record(order)))
    expected = _row(order)
    expected["blob"] = bytes(expected["blob"])
    assert {schema.model_fields[c].attname: v for c, v in back.items()} == expected


def test_nulls_round_trip() -> None:
    order = _order(
        big=None,
        ratio=None,
        ordered_on=None,
        at_time=None,
        ref=None,
        wait=None,
        blob=None,
        customer=None,
    )
    order = SyncOrder.objects.get(pk=order.pk)
    schema = AvroSchema.from_model(SyncOrder)
    back = _decoded(schema, _through_fastavro(schema, schema.record(order)))
    assert back["big"] is back["ref"] is back["blob"] is back["customer_id"] is None


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/Chicago"])
def test_naive_datetimes_travel_as_their_wall_time_and_come_back_unchanged(zone) -> None:
    """Without ``USE_TZ`` a datetime travels as its wall time read as UTC, as Kafka Connect
    sends a column without a time zone, whatever ``TIME_ZONE`` (and with it the process's local
    zone) is; it comes back unchanged."""
    with override_settings(USE_TZ=False, TIME_ZONE=zone):
        schema = AvroSchema.from_model(SyncOrder, fields=["created_at"])
        field = schema.model_fields["created_at"]
        naive = dt.datetime(2026, 3, 1, 12, 30, 45, 999999)
        back = _through_fastavro(schema, {"created_at": to_avro(field, naive)})
        assert back["created_at"] == naive.replace(tzinfo=dt.UTC)
        assert from_avro(field, back["created_at"]) == naive


def test_a_row_round_trips_through_the_broker_and_the_registry(settings, create_topic, group):
    kafka_settings = {**settings.MESSAGING["KAFKA"], "SCHEMA_REGISTRY": {"url": "mock://schema"}}
    order = SyncOrder.objects.get(pk=_order().pk)
    value_schema = AvroSchema.from_model(SyncOrder)
    key_schema = AvroSchema.key_from_model(SyncOrder)
    seen = []

    def consume(self, msg):
        seen.append(
            (
                self.deserialize(msg.key(), MessageField.KEY, msg.headers()),
                self.deserialize(msg.value(), MessageField.VALUE, msg.headers()),
            )
        )

    with override_settings(MESSAGING={**settings.MESSAGING, "KAFKA": kafka_settings}):
        name = create_topic()
        topic = make_topic(
            AvroTopic,
            name,
            key_schema=key_schema.to_json(),
            value_schema=value_schema.to_json(),
            consume=consume,
            atomic=False,
        )
        topic().produce(value_schema.record(order), key=key_schema.record(order))
        kafka.producer.flush(5)
        run_until(make_consumer(group, topic())(), lambda: seen)
        registered = kafka.schema_client.get_latest_version(f"{name}-value").schema.schema_str
    key, value = seen[0]
    assert key == {"id": order.pk}
    expected = _row(order)
    expected["blob"] = bytes(expected["blob"])
    back = _decoded(value_schema, value)
    assert {value_schema.model_fields[c].attname: v for c, v in back.items()} == expected
    assert AvroSchema.from_json(registered).field_names == value_schema.field_names


class Address(TypedDict):
    city: str


class Person(TypedDict):
    home: Address
    past: list[Address] | None


def test_nested_typed_dicts_are_records_named_once() -> None:
    schema = AvroSchema.from_type(Person).to_dict()
    address = {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}
    assert schema["fields"] == [
        {"name": "home", "type": address},
        {"name": "past", "type": ["null", {"type": "array", "items": "Address"}], "default": None},
    ]
    datum = {"home": {"city": "Oslo"}, "past": [{"city": "Rome"}]}
    assert _through_fastavro(AvroSchema.from_type(Person), datum) == datum
