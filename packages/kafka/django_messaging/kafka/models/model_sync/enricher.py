"""The enricher of a ``ModelSync``: re-produces the raw topic, through ``enrich_transforms``,
to the public topic.

It is a :class:`~django_messaging.kafka.topic.reproducer.TopicReproducer` (each record confirmed
by the broker before the raw record's offset is stored; tombstones stay tombstones) that runs
on ``ModelSync.enricher_consumer`` or ``MODEL_SYNC_ENRICHER_CONSUMER`` (default
:class:`ModelSyncEnricherConsumer`, group ``MODEL_SYNC_ENRICHER_GROUP``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from confluent_kafka.serialization import MessageField, SerializationContext
from django.utils.module_loading import import_string

from django_messaging.kafka.conf import settings
from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.schema.avro import AvroSchema
from django_messaging.kafka.topic.avro import AvroTopicConsumer, FastAvroSerializer, _schema_client
from django_messaging.kafka.topic.reproducer import TopicReproducer

if TYPE_CHECKING:
    from django_messaging.kafka.models.model_sync.sync import ModelSync

__all__ = [
    "ModelSyncAvroEnricher",
    "ModelSyncEnricher",
    "ModelSyncEnricherConsumer",
    "enricher_topics",
]

#: Debezium's deletion marker (``ExtractNewRecordState``), kept in the enriched Avro records.
DELETED_FIELD = {"name": "__deleted", "type": ["null", "string"], "default": None}


class ModelSyncEnricherConsumer(Consumer):
    """The default consumer of the enrichers, in the group ``MODEL_SYNC_ENRICHER_GROUP``."""

    topics = Topics()

    @classmethod
    def build_config(cls) -> dict[str, Any]:
        config = super().build_config()
        if "group.id" not in cls.config:
            config["group.id"] = settings.MODEL_SYNC_ENRICHER_GROUP
        return config


class ModelSyncEnricher(TopicReproducer):
    """The enricher of one sync, JSON in and out (a ``PythonSource``)."""

    def __init__(self, sync: type[ModelSync]) -> None:
        self.model_sync = sync
        self._name = sync.raw_topic()
        self.reproduce_name = sync.get_topic()  # type: ignore[misc]
        self.transforms = tuple(sync.enrich_transforms)  # type: ignore[misc]

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} -> {self.reproduce_name!r}>"


class ModelSyncAvroEnricher(AvroTopicConsumer, ModelSyncEnricher):
    """The enricher of one sync in Avro: the raw records are read with their writer schema,
    the enriched ones written with :meth:`value_schema` (the synced columns, ``__deleted``
    and ``enrich_schema``) and :meth:`key_schema` (the key columns and ``enrich_key_schema``)
    under the public topic's subjects."""

    schema_config: ClassVar[dict[str, Any] | None] = None

    def value_schema(self) -> AvroSchema:
        sync = self.model_sync
        schema = AvroSchema.from_model(sync.get_model(), list(sync.columns()))
        schema = schema.extend(AvroSchema(schema.name, [DELETED_FIELD]))
        if sync.enrich_schema is not None:
            schema = schema.extend(sync.enrich_schema)
        return schema

    def key_schema(self) -> AvroSchema:
        sync = self.model_sync
        source = sync.source
        columns = source.key_columns(sync) if source is not None else ["pk"]
        schema = AvroSchema.key_from_model(sync.get_model(), columns)
        if sync.enrich_key_schema is not None:
            schema = schema.extend(sync.enrich_key_schema)
        return schema

    def _serializer(self, field: str) -> FastAvroSerializer:
        found = self.__dict__.get(f"_{field}_serializer")
        client = _schema_client()
        if found is None or found.client is not client:
            schema = self.key_schema() if field == "key" else self.value_schema()
            found = FastAvroSerializer(client, schema.to_json(), self.schema_config)
            self.__dict__[f"_{field}_serializer"] = found
        return found

    def serialize_key(self, key: Any, target: str) -> bytes | None:
        return self._serializer("key")(key, SerializationContext(target, MessageField.KEY))

    def serialize_value(self, value: Any, target: str) -> bytes | None:
        return self._serializer("value")(value, SerializationContext(target, MessageField.VALUE))


def enricher_consumer_path(sync: type[ModelSync]) -> str:
    path: Any = sync.enricher_consumer or settings.MODEL_SYNC_ENRICHER_CONSUMER
    if not isinstance(path, str):
        return f"{path.__module__}.{path.__name__}"
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise DjangoKafkaError(
            f"{sync.__qualname__}: cannot import the enricher consumer {path!r}: {exc}"
        ) from exc
    return f"{cls.__module__}.{cls.__name__}"


def enricher_topics(sync: type[ModelSync]) -> list[tuple[str, str, Any]]:
    """The ``("enricher", consumer path, build)`` entry of ``sync``."""
    from django_messaging.kafka.models.model_sync.source import PythonAvroSource, PythonSource

    plain_json = isinstance(sync.source, PythonSource) and not isinstance(
        sync.source, PythonAvroSource
    )
    cls = ModelSyncEnricher if plain_json else ModelSyncAvroEnricher
    return [("enricher", enricher_consumer_path(sync), lambda: cls(sync))]
