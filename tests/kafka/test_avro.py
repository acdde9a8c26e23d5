"""Avro topics through confluent-kafka's ``mock://`` Schema Registry and the broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField
from django.test import override_settings

from django_messaging.kafka import kafka
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic.avro import AvroTopic, FastAvroSerializer
from tests.kafka.conftest import make_consumer, make_topic, run_until

pytestmark = pytest.mark.django_db

VALUE_SCHEMA = """{"type": "record", "name": "Order", "fields": [
  {"name": "id", "type": "long"}, {"name": "item", "type": "string"},
  {"name": "qty", "type": "int", "default": 1}]}"""
KEY_SCHEMA = '{"type": "string"}'


@pytest.fixture
def registry(settings, kafka_bootstrap):
    kafka_settings = {**settings.MESSAGING["KAFKA"], "SCHEMA_REGISTRY": {"url": "mock://tests"}}
    with override_settings(MESSAGING={**settings.MESSAGING, "KAFKA": kafka_settings}):
        yield kafka.schema_client


def test_avro_round_trip_through_the_broker(registry, create_topic, group):
    name = create_topic()
    seen = []

    def consume(self, msg):
        key = self.deserialize(msg.key(), MessageField.KEY, msg.headers())
        value = self.deserialize(msg.value(), MessageField.VALUE, msg.headers())
        seen.append((key, value))

    topic_cls = make_topic(
        AvroTopic,
        name,
        key_schema=KEY_SCHEMA,
        value_schema=VALUE_SCHEMA,
        consume=consume,
        atomic=False,
    )
    for i in range(3):
        topic_cls().produce({"id": i, "item": f"item-{i}", "qty": i + 1}, key=f"k{i}")
    kafka.producer.flush(5)
    run_until(make_consumer(group, topic_cls())(), lambda: len(seen) == 3)
    assert seen == [(f"k{i}", {"id": i, "item": f"item-{i}", "qty": i + 1}) for i in range(3)]
    subjects = registry.get_subjects()
    assert f"{name}-value" in subjects and f"{name}-key" in subjects


def test_avro_serializers_are_reused(registry):
    cls = make_topic(AvroTopic, "orders", value_schema=VALUE_SCHEMA, key_schema=KEY_SCHEMA)
    first = cls().get_value_serializer()
    assert isinstance(first, FastAvroSerializer)
    assert cls().get_value_serializer() is first
    assert cls().get_value_deserializer() is cls().get_value_deserializer()
    assert cls().get_key_serializer() is not first
    assert cls().get_value_serializer(schema_str=KEY_SCHEMA) is not first


def test_schema_client_needs_the_setting(settings):
    with (
        override_settings(MESSAGING={"KAFKA": {}}),
        pytest.raises(DjangoKafkaError, match="SCHEMA_REGISTRY"),
    ):
        _ = kafka.schema_client


def test_wire_format_is_compatible_with_confluent_serializers(registry):
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import SerializationContext

    cls = make_topic(AvroTopic, "compat", value_schema=VALUE_SCHEMA)
    ctx = SerializationContext("compat", MessageField.VALUE)
    ours = cls().serialize({"id": 1, "item": "a", "qty": 2}, MessageField.VALUE)
    assert AvroDeserializer(registry)(ours, ctx) == {"id": 1, "item": "a", "qty": 2}
    theirs = AvroSerializer(registry, VALUE_SCHEMA)({"id": 2, "item": "b", "qty": 3}, ctx)
    assert cls().deserialize(theirs, MessageField.VALUE) == {"id": 2, "item": "b", "qty": 3}


def test_schema_config_beyond_the_fast_codec_uses_confluent_serializers(registry):
    cls = make_topic(
        AvroTopic, "rules", value_schema=VALUE_SCHEMA, schema_config={"use.schema.id": None}
    )
    assert isinstance(cls().get_value_serializer(), AvroSerializer)


def test_corrupt_avro_is_a_serialization_error(registry):
    from confluent_kafka.serialization import SerializationError

    cls = make_topic(AvroTopic, "corrupt", value_schema=VALUE_SCHEMA)
    with pytest.raises(SerializationError):
        cls().deserialize(b"not avro at all", MessageField.VALUE)


def test_avro_producer_and_consumer_halves(registry, create_topic, read):
    """``AvroTopicProducer`` and ``AvroTopicConsumer`` on their own, as the seed documents."""
    from django_messaging.kafka.topic.avro import AvroTopicConsumer, AvroTopicProducer

    name = create_topic()
    out = make_topic(AvroTopicProducer, name, value_schema=VALUE_SCHEMA, key_schema=KEY_SCHEMA)
    out().produce({"id": 7, "item": "half"}, key="k7")
    kafka.producer.flush(5)
    msg = read(name, 1)[0]
    into = make_topic(AvroTopicConsumer, name)()
    assert into.deserialize(msg.key(), MessageField.KEY) == "k7"
    assert into.deserialize(msg.value(), MessageField.VALUE) == {"id": 7, "item": "half", "qty": 1}
    with pytest.raises(DjangoKafkaError):
        into.consume(msg)  # a consumer half still needs its own consume()


def test_a_project_starts_without_importing_the_schema_registry_client():
    """The model-sync consumers import the Avro module in every process of a project that
    installs the package; confluent-kafka's registry client (and the HTTP libraries under it)
    comes only with the first Avro serializer or deserializer."""
    script = (
        "import sys, django; django.setup()\n"
        "import django_messaging.kafka.topic.avro as avro\n"
        "assert 'confluent_kafka.schema_registry' not in sys.modules, 'imported at start'\n"
        'avro.FastAvroSerializer(None, \'{"type": "string"}\')\n'
        "assert 'confluent_kafka.schema_registry' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
