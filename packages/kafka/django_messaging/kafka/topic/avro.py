"""Avro topics with the Confluent Schema Registry (``SCHEMA_REGISTRY`` setting).

Messages use Confluent's wire format (a zero byte, the 4-byte schema id, the Avro binary), so
they interoperate with every Confluent client. Serializers and deserializers are built once
per topic class and registry client and reused: a schema is registered or looked up once per
subject and parsed once per id, then each message costs one fastavro call.

The built-in codec supports the ``schema_config`` keys ``auto.register.schemas``,
``normalize.schemas``, ``use.latest.version`` and ``subject.name.strategy``; any other key
(data-contract rules, encryption, ...) or deserializer argument switches that topic to
confluent-kafka's own ``AvroSerializer``/``AvroDeserializer``.

confluent-kafka's ``schema_registry`` package (and the HTTP and auth libraries it imports) is
imported when the first Avro serializer or deserializer is built, not with this module: the
model-sync consumers import this module in every process of a project that installs the
package, and most never use Avro.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, ClassVar

from confluent_kafka.serialization import (
    Deserializer,
    SerializationContext,
    SerializationError,
    Serializer,
)
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from django_messaging.kafka.clients import shared
from django_messaging.kafka.topic import Topic, TopicConsumer, TopicProducer, _cache_of

__all__ = [
    "AvroTopic",
    "AvroTopicConsumer",
    "AvroTopicProducer",
    "FastAvroDeserializer",
    "FastAvroSerializer",
]

MAGIC = b"\x00"
SERIALIZER_CONF = frozenset(
    {"auto.register.schemas", "normalize.schemas", "use.latest.version", "subject.name.strategy"}
)


def _schema_client() -> Any:
    return shared.schema_client


class FastAvroSerializer(Serializer):
    """Confluent-framed Avro with one registry round trip per subject (then cached)."""

    def __init__(self, client: Any, schema_str: str, conf: dict[str, Any] | None = None) -> None:
        from confluent_kafka.schema_registry import Schema, topic_subject_name_strategy

        conf = dict(conf or {})
        self.client = client
        self.auto_register = bool(conf.get("auto.register.schemas", True))
        self.normalize = bool(conf.get("normalize.schemas", False))
        self.use_latest = bool(conf.get("use.latest.version", False))
        self.subject_name: Callable[..., str | None] = conf.get(
            "subject.name.strategy", topic_subject_name_strategy
        )
        raw = json.loads(schema_str)
        self.schema = Schema(schema_str, "AVRO")
        self.parsed = parse_schema(raw)
        self.record_name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(raw, dict) and raw.get("namespace") and self.record_name:
            self.record_name = f"{raw['namespace']}.{self.record_name}"
        self._ids: dict[str | None, tuple[int, Any]] = {}

    def _schema_id(self, subject: str | None) -> tuple[int, Any]:
        found = self._ids.get(subject)
        if found is not None:
            return found
        if subject is None:
            raise SerializationError("the subject name strategy gave no subject")
        parsed = self.parsed
        if self.use_latest:
            latest = self.client.get_latest_version(subject)
            schema_id = latest.schema_id
            parsed = parse_schema(json.loads(latest.schema.schema_str))
        elif self.auto_register:
            schema_id = self.client.register_schema(subject, self.schema, self.normalize)
        else:
            schema_id = self.client.lookup_schema(subject, self.schema, self.normalize).schema_id
        found = self._ids[subject] = (schema_id, parsed)
        return found

    def __call__(self, obj: Any, ctx: SerializationContext | None = None) -> bytes | None:
        if obj is None:
            return None
        schema_id, parsed = self._schema_id(self.subject_name(ctx, self.record_name))
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(schema_id.to_bytes(4, "big"))
        try:
            schemaless_writer(buffer, parsed, obj)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerializationError(f"cannot write {type(obj).__name__} as Avro: {exc}") from exc
        return buffer.getvalue()


class FastAvroDeserializer(Deserializer):
    """Reads Confluent-framed Avro; writer schemas are fetched once per id and cached."""

    def __init__(
        self,
        client: Any,
        schema_str: str | None = None,
        from_dict: Callable[[dict[str, Any], Any], Any] | None = None,
        return_record_name: bool = False,
    ) -> None:
        self.client = client
        self.reader = parse_schema(json.loads(schema_str)) if schema_str else None
        self.from_dict = from_dict
        self.return_record_name = return_record_name
        self._writers: dict[int, Any] = {}

    def __call__(self, value: bytes | None, ctx: SerializationContext | None = None) -> Any:
        if value is None:
            return None
        if len(value) <= 5 or value[0] != 0:
            raise SerializationError(
                f"not Confluent-framed Avro ({len(value)} bytes, first byte "
                f"{value[:1]!r}); it was not produced with a Schema Registry serializer"
            )
        schema_id = int.from_bytes(value[1:5], "big")
        writer = self._writers.get(schema_id)
        if writer is None:
            schema = self.client.get_schema(schema_id)
            writer = self._writers[schema_id] = parse_schema(json.loads(str(schema.schema_str)))
        try:
            obj = schemaless_reader(
                io.BytesIO(value[5:]), writer, self.reader, self.return_record_name
            )
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise SerializationError(f"corrupt Avro payload: {exc!r}") from exc
        return self.from_dict(obj, ctx) if self.from_dict is not None else obj  # type: ignore[arg-type]


class AvroTopicProducer(TopicProducer):
    """Produces Avro: set ``key_schema`` / ``value_schema`` (schema strings) and optionally
    ``schema_config`` (serializer conf, e.g. ``{"auto.register.schemas": False}``)."""

    key_schema: ClassVar[str | None] = None
    value_schema: ClassVar[str | None] = None
    schema_config: ClassVar[dict[str, Any] | None] = None

    def get_key_serializer(self, **kwargs: Any) -> Any:
        return self._avro_serializer("key", kwargs)

    def get_value_serializer(self, **kwargs: Any) -> Any:
        return self._avro_serializer("value", kwargs)

    def _avro_serializer(self, field: str, kwargs: dict[str, Any]) -> Any:
        client = _schema_client()
        cache = _cache_of(type(self))
        schema_str = getattr(self, f"{field}_schema")
        conf = self.schema_config
        # Schema and config are read from the instance, which may set its own.
        key = ("avro-ser", field, id(client), schema_str, repr(sorted((conf or {}).items())))
        if not kwargs:
            found = cache.get(key)
            if found is not None:
                return found
        options = {"schema_str": schema_str, "conf": conf, **kwargs}
        if set(options) <= {"schema_str", "conf"} and set(options["conf"] or {}) <= SERIALIZER_CONF:
            serializer: Any = FastAvroSerializer(client, options["schema_str"], options["conf"])
        else:
            from confluent_kafka.schema_registry.avro import AvroSerializer

            serializer = AvroSerializer(client, **options)
        if not kwargs:
            cache[key] = serializer
        return serializer


class AvroTopicConsumer(TopicConsumer):
    """Consumes Avro; the writer schema comes from the registry."""

    def get_key_deserializer(self, **kwargs: Any) -> Any:
        return self._avro_deserializer("key", kwargs)

    def get_value_deserializer(self, **kwargs: Any) -> Any:
        return self._avro_deserializer("value", kwargs)

    def _avro_deserializer(self, field: str, kwargs: dict[str, Any]) -> Any:
        client = _schema_client()
        if kwargs:
            if set(kwargs) <= {"schema_str", "from_dict", "return_record_name"}:
                return FastAvroDeserializer(client, **kwargs)
            from confluent_kafka.schema_registry.avro import AvroDeserializer

            return AvroDeserializer(client, **kwargs)
        cache = _cache_of(type(self))
        key = ("avro-de", field, id(client))
        found = cache.get(key)
        if found is None:
            found = cache[key] = FastAvroDeserializer(client)
        return found


class AvroTopic(AvroTopicConsumer, AvroTopicProducer, Topic):
    """Avro in both directions on one topic."""
