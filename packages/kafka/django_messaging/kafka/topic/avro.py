"""Avro topics with the Confluent Schema Registry (``SCHEMA_REGISTRY`` setting).

Serializers and deserializers are built once per topic class and registry client and reused,
so the schema is parsed once and the registry is asked once per schema, not per message.
"""

from __future__ import annotations

from typing import Any, ClassVar

from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

from django_messaging.kafka.topic import Topic, TopicConsumer, TopicProducer

__all__ = ["AvroTopic", "AvroTopicConsumer", "AvroTopicProducer"]


def _schema_client() -> Any:
    from django_messaging.kafka import kafka

    return kafka.schema_client


class AvroTopicProducer(TopicProducer):
    """Produces Avro: set ``key_schema`` / ``value_schema`` (schema strings) and optionally
    ``schema_config`` (``AvroSerializer`` conf, e.g. ``{"auto.register.schemas": False}``)."""

    key_schema: ClassVar[str | None] = None
    value_schema: ClassVar[str | None] = None
    schema_config: ClassVar[dict[str, Any] | None] = None

    def _serializer_cache_key(self) -> Any:
        return id(_schema_client())

    def get_key_serializer(self, **kwargs: Any) -> Any:
        kwargs.setdefault("schema_str", self.key_schema)
        kwargs.setdefault("conf", self.schema_config)
        return self._avro_serializer("key", kwargs)

    def get_value_serializer(self, **kwargs: Any) -> Any:
        kwargs.setdefault("schema_str", self.value_schema)
        kwargs.setdefault("conf", self.schema_config)
        return self._avro_serializer("value", kwargs)

    def _avro_serializer(self, field: str, kwargs: dict[str, Any]) -> Any:
        client = _schema_client()
        default = kwargs == {
            "schema_str": getattr(self, f"{field}_schema"),
            "conf": self.schema_config,
        }
        if not default:
            return AvroSerializer(client, **kwargs)
        from django_messaging.kafka.topic import _cache_of

        cache = _cache_of(type(self))
        key = ("avro-ser", field, id(client))
        found = cache.get(key)
        if found is None:
            found = cache[key] = AvroSerializer(client, **kwargs)
        return found


class AvroTopicConsumer(TopicConsumer):
    """Consumes Avro; the writer schema comes from the registry (``AvroDeserializer``)."""

    def get_key_deserializer(self, **kwargs: Any) -> Any:
        return self._avro_deserializer("key", kwargs)

    def get_value_deserializer(self, **kwargs: Any) -> Any:
        return self._avro_deserializer("value", kwargs)

    def _avro_deserializer(self, field: str, kwargs: dict[str, Any]) -> Any:
        client = _schema_client()
        if kwargs:
            return AvroDeserializer(client, **kwargs)
        from django_messaging.kafka.topic import _cache_of

        cache = _cache_of(type(self))
        key = ("avro-de", field, id(client))
        found = cache.get(key)
        if found is None:
            found = cache[key] = AvroDeserializer(client)
        return found


class AvroTopic(AvroTopicConsumer, AvroTopicProducer, Topic):
    """Avro in both directions on one topic."""
