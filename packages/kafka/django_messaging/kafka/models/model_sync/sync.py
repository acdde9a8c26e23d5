"""``ModelSync``: one class that wires a Django model to a Kafka topic.

    class OrderSync(ModelSync):
        model = Order
        topic = "orders"
        source = DbzPostgresSource()        # or PythonAvroSource(): the model's changes out
        sink = PythonAvroSink()             # or DbzJdbcSink(): the topic into the model

A subclass is registered when it is defined (``kafka.model_syncs``); put them in an app's
``model_syncs.py`` (or ``kafka/model_syncs.py``), which ``autodiscover()`` imports. A subclass
without ``model`` is a base for other syncs and is not registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.db import models

from django_messaging.kafka.conf import settings
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.models.model_sync.fields import ExcludeFields, IncludeFields
from django_messaging.kafka.models.model_sync.sink import Sink
from django_messaging.kafka.models.model_sync.source import Source
from django_messaging.kafka.schema.avro import model_columns
from django_messaging.kafka.sync_registry import model_syncs
from django_messaging.kafka.topic.transforms import Transform

__all__ = ["ModelSync"]


class ModelSync:
    """The model, its topic, and what writes to and reads from that topic.

    ``source``: what publishes the model's changes to ``topic`` (``DbzPostgresSource``: a
    Debezium connector; ``PythonSource``/``PythonAvroSource``: this process, on save and
    delete). ``sink``: what writes ``topic`` into the model (``DbzJdbcSink``: a JDBC sink
    connector; ``PythonSink``/``PythonAvroSink``: a topic on a consumer of this project).
    Either, or both (a two-way sync, which needs a ``KafkaConnectSkipModel`` and an explicit
    ``topic``).

    ``topic``: default ``<MODEL_SYNC_TOPIC_PREFIX>.<MODEL_SYNC_DB_SCHEMA>.<table>``, the topic
    Debezium writes the table to. ``fields``: ``IncludeFields``/``ExcludeFields`` (default:
    every column), applied on both sides. ``consume_transforms``: steps of
    :mod:`~django_messaging.kafka.topic.transforms` the Python sink runs on each value.

    Enrichment: with ``enrich_transforms``, the source writes to the raw topic
    (:meth:`raw_topic`) and an enricher (a ``TopicReproducer`` on ``enricher_consumer``, default
    ``MODEL_SYNC_ENRICHER_CONSUMER``) re-produces each record through those transforms to the
    public topic, ``enriched_topic`` or ``topic``, which the sink reads. In Avro (every source
    but ``PythonSource``) the enriched records are written with the model's schema of the
    synced columns, extended by ``enrich_schema`` (a ``TypedDict`` of the added fields), and
    their keys with the schema of the key columns extended by ``enrich_key_schema`` (the fields
    that steps with ``apply_to=MessagePart.KEY`` or ``BOTH`` add to the key).
    """

    model: ClassVar[type[models.Model] | None] = None
    topic: ClassVar[str | None] = None
    fields: ClassVar[IncludeFields | ExcludeFields | None] = None
    source: ClassVar[Source | None] = None
    sink: ClassVar[Sink | None] = None
    consume_transforms: ClassVar[Sequence[Transform]] = ()
    enrich_transforms: ClassVar[Sequence[Transform]] = ()
    enriched_topic: ClassVar[str | None] = None
    enrich_schema: ClassVar[type | None] = None
    enrich_key_schema: ClassVar[type | None] = None
    enricher_consumer: ClassVar[str | type | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.model is None:
            return
        cls.validate()
        model_syncs.register(cls)

    # --- declaration checks ---------------------------------------------------------------

    @classmethod
    def validate(cls) -> None:
        """Refuse a declaration that cannot work (raised when the class is defined)."""
        name = cls.__qualname__
        if not (isinstance(cls.model, type) and issubclass(cls.model, models.Model)):
            raise DjangoKafkaError(f"{name}.model must be a Django model class, not {cls.model!r}.")
        if cls.source is None and cls.sink is None:
            raise DjangoKafkaError(f"{name} sets neither source nor sink: set one or both.")
        if cls.source is not None and not isinstance(cls.source, Source):
            raise DjangoKafkaError(f"{name}.source must be a Source, not {cls.source!r}.")
        if cls.sink is not None and not isinstance(cls.sink, Sink):
            raise DjangoKafkaError(f"{name}.sink must be a Sink, not {cls.sink!r}.")
        if cls.fields is not None and not isinstance(cls.fields, IncludeFields | ExcludeFields):
            raise DjangoKafkaError(
                f"{name}.fields must be IncludeFields([...]) or ExcludeFields([...])."
            )
        cls.columns()  # unknown field names raise here
        if cls.has_enrich() and not (cls.topic or cls.enriched_topic):
            raise DjangoKafkaError(
                f"{name} has enrich_transforms: set topic (or enriched_topic), the topic the "
                "enriched records go to (the source writes to the raw topic)."
            )
        if cls.is_bidirectional():
            from django_messaging.kafka.connect.models import KafkaConnectSkipModel

            if not issubclass(cls.model, KafkaConnectSkipModel):
                raise DjangoKafkaError(
                    f"{name} has a source and a sink (a two-way sync), so "
                    f"{cls.model.__name__} must inherit KafkaConnectSkipModel: its kafka_skip "
                    "column keeps the rows the sink writes from being published again."
                )
            if not cls.topic:
                raise DjangoKafkaError(
                    f"{name} has a source and a sink (a two-way sync): set topic, the name "
                    "both sides agree on."
                )

    # --- what the declaration means -------------------------------------------------------

    @classmethod
    def get_model(cls) -> type[models.Model]:
        if cls.model is None:
            raise DjangoKafkaError(f"{cls.__qualname__} has no model.")
        return cls.model

    @classmethod
    def is_bidirectional(cls) -> bool:
        return cls.source is not None and cls.sink is not None

    @classmethod
    def db_table(cls) -> str:
        """``<MODEL_SYNC_DB_SCHEMA>.<table>``, as Debezium names the table."""
        return f"{settings.MODEL_SYNC_DB_SCHEMA}.{cls.get_model()._meta.db_table}"

    @classmethod
    def raw_topic(cls, prefix: str | None = None) -> str:
        """The topic Debezium writes the table to: ``<prefix>.<schema>.<table>`` (prefix:
        the argument, else ``MODEL_SYNC_TOPIC_PREFIX``; none: ``<schema>.<table>``)."""
        prefix = prefix if prefix is not None else settings.MODEL_SYNC_TOPIC_PREFIX
        return f"{prefix}.{cls.db_table()}" if prefix else cls.db_table()

    @classmethod
    def has_enrich(cls) -> bool:
        return bool(cls.enrich_transforms)

    @classmethod
    def get_topic(cls) -> str:
        """The public topic of this sync, which sinks read: ``enriched_topic`` or ``topic``,
        else :meth:`raw_topic`."""
        return cls.enriched_topic or cls.topic or cls.raw_topic()

    @classmethod
    def source_topic(cls) -> str:
        """The topic the source writes to: the public one, or the raw one when an enricher
        stands between them."""
        return cls.raw_topic() if cls.has_enrich() else cls.get_topic()

    @classmethod
    def consumer_topics(cls) -> list[tuple[str, str, Any]]:
        """``(role, consumer path, build)`` of each topic this sync runs on a consumer of the
        project: its Python sink, its enricher."""
        found: list[tuple[str, str, Any]] = []
        sink = cls.sink
        make_topic = getattr(sink, "make_topic", None)
        if make_topic is not None:
            path = sink.consumer_path(cls)  # type: ignore[union-attr]
            if path is not None:
                found.append(("sink", path, lambda: make_topic(cls)))
        if cls.has_enrich():
            from django_messaging.kafka.models.model_sync.enricher import enricher_topics

            found.extend(enricher_topics(cls))
        return found

    @classmethod
    def columns(cls) -> dict[str, models.Field[Any, Any]]:
        """The synced fields by column, in model order (``fields`` applied; the primary key
        always in). ``kafka_skip`` is never synced as data: each side writes its own."""
        model = cls.get_model()
        fields = cls.fields
        columns = model_columns(
            model, fields, exclude=isinstance(fields, ExcludeFields) if fields else False
        )
        pk = model._meta.pk
        if pk is not None and pk.column not in columns:
            columns = {str(pk.column): pk, **columns}
        columns.pop("kafka_skip", None)
        return columns

    # --- registry hooks -------------------------------------------------------------------

    @classmethod
    def registered(cls) -> None:
        for part in (cls.source, cls.sink):
            if part is not None:
                part.registered(cls)

    @classmethod
    def unregistered(cls) -> None:
        for part in (cls.source, cls.sink):
            if part is not None:
                part.unregistered(cls)
