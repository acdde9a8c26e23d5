"""Topics: serialization, produce, suppression, the shared producer."""

from __future__ import annotations

import pytest
from confluent_kafka.serialization import (
    MessageField,
    SerializationError,
    StringDeserializer,
    StringSerializer,
)
from django.test import override_settings

from django_messaging.core import suppression
from django_messaging.kafka import kafka, producer
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.producer import Producer
from django_messaging.kafka.topic import Topic, TopicConsumer, TopicProducer
from tests.kafka.conftest import headers_of, make_topic


class CountingSerializer(StringSerializer):
    built = 0
    calls = 0

    def __init__(self, *args, **kwargs):
        type(self).built += 1
        super().__init__(*args, **kwargs)

    def __call__(self, obj, ctx=None):
        type(self).calls += 1
        return super().__call__(obj, ctx)


def test_produce_serializes_key_value_and_keeps_headers(create_topic, read):
    name = create_topic()
    topic = make_topic(
        Topic, name, value_serializer="json", value_deserializer="json", key_serializer="string"
    )()
    topic.produce({"id": 1, "name": "x"}, key="k-1", headers=[("h", b"v")])
    kafka.producer.flush(5)
    msg = read(name, 1)[0]
    assert msg.key() == b"k-1"
    assert headers_of(msg) == {"h": b"v"}
    assert topic.deserialize(msg.value(), MessageField.VALUE) == {"id": 1, "name": "x"}
    assert topic.deserialize(msg.key(), MessageField.KEY) == "k-1"


def test_serializers_are_built_once_per_topic_class(create_topic):
    CountingSerializer.built = 0
    cls = make_topic(TopicProducer, create_topic(), value_serializer=CountingSerializer)
    for i in range(20):
        cls().produce(f"v{i}")
    assert CountingSerializer.built == 1
    assert cls().get_value_serializer() is cls().get_value_serializer()
    # explicit serializer kwargs build a dedicated instance
    assert cls().get_value_serializer(codec="ascii") is not cls().get_value_serializer()
    kafka.producer.flush(5)


def test_suppressed_topic_is_neither_serialized_nor_produced(create_topic, read):
    """django-kafka #53: suppression was checked after serialization."""
    name = create_topic()
    CountingSerializer.calls = 0
    cls = make_topic(TopicProducer, name, value_serializer=CountingSerializer)
    with producer.suppress([name]):
        cls().produce("hidden")
    with producer.suppress():
        cls().produce("hidden too")
        with producer.unsuppress():
            cls().produce("shown")
    assert CountingSerializer.calls == 1
    kafka.producer.produce(name, b"end")  # one partition: anything suppressed would come first
    kafka.producer.flush(5)
    assert [m.value() for m in read(name, 2)] == [b"shown", b"end"]


def test_producer_suppress_is_the_core_suppression():
    assert producer.suppress is suppression.suppress
    assert producer.unsuppress is suppression.unsuppress
    with suppression.suppress(["a"]):
        assert producer.Suppression.active("a") and not producer.Suppression.active("b")


def test_suppress_decorator_adds_to_the_suppression_active_when_called():
    """django-kafka: ``@suppress(["A"])`` computed its topics when the function was decorated,
    so calling it inside ``with suppress():`` un-suppressed every other topic."""

    @producer.suppress(["A"])
    def inner():
        return producer.Suppression.active("B"), producer.Suppression.active("A")

    with producer.suppress():
        assert inner() == (True, True)
    assert inner() == (False, True)


def test_kafka_producer_produce_honours_suppression(create_topic, read):
    name = create_topic()
    with producer.suppress([name]):
        kafka.producer.produce(name, b"no")
    kafka.producer.produce(name, b"yes")
    kafka.producer.produce(name, b"end")
    kafka.producer.flush(5)
    assert [m.value() for m in read(name, 2)] == [b"yes", b"end"]


def test_regex_names_cannot_be_produced_to():
    with pytest.raises(DjangoKafkaError):
        make_topic(Topic, "^orders.*")()


def test_consume_must_be_defined():
    with pytest.raises(DjangoKafkaError, match="not implemented"):
        make_topic(TopicConsumer, "x")().consume(None)


def test_producer_is_rebuilt_when_settings_change(kafka_bootstrap):
    first = kafka.producer
    assert kafka.producer is first
    with override_settings(
        MESSAGING={
            "KAFKA": {
                "CLIENT_ID": "cid",
                "GLOBAL_CONFIG": {"bootstrap.servers": kafka_bootstrap, "linger.ms": 1},
                "PRODUCER_CONFIG": {"linger.ms": 7},
            }
        }
    ):
        rebuilt = kafka.producer
        assert rebuilt is not first
        assert rebuilt.config["client.id"] == "cid"
        assert rebuilt.config["linger.ms"] == 7
        own = Producer({"linger.ms": 9})
        assert own.config["linger.ms"] == 9
        own.flush(1)
    with override_settings(
        MESSAGING={
            "KAFKA": {
                "CLIENT_ID": "cid",
                "GLOBAL_CONFIG": {"bootstrap.servers": kafka_bootstrap},
                "PRODUCER_CONFIG": {"client.id": "producer-own"},
            }
        }
    ):
        # CLIENT_ID goes in first, so a client.id in PRODUCER_CONFIG wins
        assert kafka.producer.config["client.id"] == "producer-own"


def test_header_helpers_return_bytes_of_the_first_or_every_value(create_topic, read):
    from django_messaging.kafka.utils.message import Header

    name = create_topic()
    kafka.producer.produce(name, b"v", headers=[("h", b"1"), ("other", b"x"), ("h", b"2")])
    kafka.producer.produce(name, b"bare")
    kafka.producer.flush(5)
    with_headers, bare = read(name, 2)
    assert Header.get(with_headers.headers(), "h") == b"1"
    assert Header.list(with_headers.headers(), "h") == [b"1", b"2"]
    assert Header.get(with_headers.headers(), "missing") is None
    assert Header.get(bare.headers(), "h") is None and Header.list(bare.headers(), "h") == []


def test_messages_still_queued_are_delivered_when_the_process_exits(
    create_topic, read, kafka_bootstrap
):
    """django-kafka never flushed its producer: a script or command that produced and
    returned lost what librdkafka had not sent yet."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests import services

    name = create_topic()
    root = Path(__file__).resolve().parents[2]
    script = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "settings.MESSAGING['KAFKA']['PRODUCER_CONFIG'] = {'linger.ms': 3000}\n"
        "from django_messaging.kafka import kafka\n"
        f"kafka.producer.produce({name!r}, b'queued at exit')\n"
        "assert len(kafka.producer) == 1\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.project.settings",
        "PYTHONPATH": str(root),
        services.KAFKA_BOOTSTRAP_ENV: kafka_bootstrap,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert [m.value() for m in read(name, 1)] == [b"queued at exit"]


def test_a_topic_instance_deserializes_after_the_settings_changed() -> None:
    """The per-instance deserializer cache was stored under the name of the method that builds
    it: after a settings change (``reset_clients``, ``override_settings``) a consumer's topic
    instance raised "'tuple' object is not callable" for every message."""

    class Values(Topic):
        name = "values"
        value_deserializer = "json"

    topic = Values()
    assert topic.deserialize(b'{"a": 1}', MessageField.VALUE) == {"a": 1}
    kafka.reset_clients()
    assert topic.deserialize(b'{"a": 2}', MessageField.VALUE) == {"a": 2}


def test_deserialize_on_the_consumer_path_behaves_as_the_deserializers_do():
    """The per-message path decodes the default ``StringDeserializer`` inline and keeps the
    deserializers on the instance: the results, errors and overrides are the deserializers'."""

    class Utf16(StringDeserializer):
        def __init__(self):
            super().__init__("utf_16")

    topic = make_topic(TopicConsumer, "plain")()
    assert topic.deserialize("é".encode(), MessageField.VALUE, [("h", b"1")]) == "é"
    assert topic.deserialize(None, MessageField.KEY, None) is None
    with pytest.raises(SerializationError):
        topic.deserialize(b"\xff\xfe\xfd", MessageField.VALUE, None)
    jsons = make_topic(TopicConsumer, "jsons", value_deserializer="json")()
    assert jsons.deserialize(b'{"a": 1}', MessageField.VALUE, [("h", b"1")]) == {"a": 1}
    assert jsons.deserialize(b'{"a": 1}', MessageField.VALUE) == {"a": 1}
    assert jsons.deserialize(b'{"a": 2}', "value") == {"a": 2}  # the field by its name
    assert topic.deserialize(b"k", "key", [("h", b"1")]) == "k"
    jsons.value_deserializer = Utf16  # an instance's own choice wins over what was kept
    assert jsons.deserialize("ü".encode("utf_16"), MessageField.VALUE) == "ü"
