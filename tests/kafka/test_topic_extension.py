"""Extension points of topics as django-kafka projects use them: an overridden ``serialize()``,
serializers and schemas chosen per instance. What reaches the broker is read back raw."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    StringDeserializer,
    StringSerializer,
)
from django.test import override_settings

from django_messaging.kafka import kafka
from django_messaging.kafka.topic import Topic, TopicConsumer, TopicProducer
from django_messaging.kafka.topic.avro import AvroTopicProducer


class Enveloped(Topic):
    """Wraps every value in an envelope by overriding ``serialize``, which django-kafka's
    ``produce()`` calls for the key and the value."""

    def serialize(self, value, field, headers=None, **kwargs):
        if field == MessageField.VALUE:
            value = {"data": value, "v": 1} if self.value_serializer == "json" else f"<{value}>"
        return super().serialize(value, field, headers, **kwargs)


@pytest.mark.parametrize("serializer", ["json", StringSerializer])
def test_produce_goes_through_an_overridden_serialize(serializer, create_topic, read):
    name = create_topic()
    topic = type("T", (Enveloped,), {"name": name, "value_serializer": serializer})()
    value = {"id": 1} if serializer == "json" else "x"

    topic.produce(value, key="k")
    kafka.producer.flush(5)

    msg = read(name, 1)[0]
    assert msg.key() == b"k"
    if serializer == "json":
        assert json.loads(msg.value()) == {"data": {"id": 1}, "v": 1}
    else:
        assert msg.value() == b"<x>"


class Named(TopicProducer, TopicConsumer):
    """One class, one topic per instance, each with its own serializers (set in ``__init__``)."""

    def __init__(self, name, serializer, deserializer):
        self._name = name
        self.value_serializer = serializer
        self.value_deserializer = deserializer
        super().__init__()

    @property
    def name(self):
        return self._name


def test_serializers_set_per_instance_are_used(create_topic, read):
    as_json = Named(create_topic(), "json", "json")
    as_text = Named(create_topic(), StringSerializer, StringDeserializer)

    as_json.produce("x")
    as_text.produce("x")
    kafka.producer.flush(5)

    assert read(as_json.name, 1)[0].value() == b'"x"'
    assert read(as_text.name, 1)[0].value() == b"x"
    assert as_json.deserialize(b'"x"', MessageField.VALUE) == "x"
    assert as_text.deserialize(b'"x"', MessageField.VALUE) == '"x"'


ORDER = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}'
ITEM = '{"type": "record", "name": "Item", "fields": [{"name": "label", "type": "string"}]}'


class SchemaPerInstance(AvroTopicProducer):
    def __init__(self, name, value_schema):
        self._name = name
        self.value_schema = value_schema
        super().__init__()

    @property
    def name(self):
        return self._name


@pytest.mark.django_db
def test_avro_schemas_set_per_instance_are_used(settings, create_topic, read):
    kafka_settings = {**settings.MESSAGING["KAFKA"], "SCHEMA_REGISTRY": {"url": "mock://fid"}}
    with override_settings(MESSAGING={**settings.MESSAGING, "KAFKA": kafka_settings}):
        orders = SchemaPerInstance(create_topic(), ORDER)
        items = SchemaPerInstance(create_topic(), ITEM)

        orders.produce({"id": 7})
        items.produce({"label": "saw"})
        kafka.producer.flush(5)

        decode = AvroDeserializer(kafka.schema_client)
        for topic, expected in ((orders, {"id": 7}), (items, {"label": "saw"})):
            raw = read(topic.name, 1)[0].value()
            ctx = SerializationContext(topic.name, MessageField.VALUE)
            assert decode(raw, ctx) == expected


def test_delivery_callbacks_and_headers_reach_the_producer(create_topic, read):
    """``produce(..., headers=..., on_delivery=...)`` as with django-kafka: the headers go on
    the message and to the serializer's context, the callback gets the delivery report."""
    name = create_topic()
    seen_headers = []

    class HeaderAware(StringSerializer):
        def __call__(self, obj, ctx=None):
            seen_headers.append(ctx.headers)
            return super().__call__(obj, ctx)

    topic = type("T", (TopicProducer,), {"name": name, "value_serializer": HeaderAware})()
    reports = []
    topic.produce(
        "v", key="k", headers=[("trace", b"1")], on_delivery=lambda e, m: reports.append((e, m))
    )
    kafka.producer.flush(5)

    assert seen_headers == [[("trace", b"1")]]
    ((error, delivered),) = reports
    assert error is None and delivered.topic() == name and delivered.value() == b"v"
    assert read(name, 1)[0].headers() == [("trace", b"1")]
