"""The sources of a ``ModelSync``: what publishes the model's changes to its topic.

* :class:`DbzPostgresSource`: a Debezium PostgreSQL connector. The sync adds its table, key
  columns, columns, replica identity and topic route to the config of a connector of this
  project (``connector=`` or ``MODEL_SYNC_SOURCE_CONNECTOR``), which ``kafka_connect``
  publishes: :meth:`Connector.final_config <django_messaging.kafka.connect.connector.Connector.final_config>`.
* :class:`PythonSource` (JSON) and :class:`PythonAvroSource` (Avro, Schema Registry): this
  process produces each saved row and a tombstone for each deleted one, after the transaction
  commits (or through the outbox with ``durable=True``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.utils.module_loading import import_string

from django_messaging.core.suppression import is_suppressed
from django_messaging.kafka.conf import settings
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.schema.avro import AvroSchema, resolve_column, to_avro
from django_messaging.kafka.topic import TopicProducer
from django_messaging.kafka.topic.avro import AvroTopicProducer

if TYPE_CHECKING:
    from django_messaging.kafka.models.model_sync.sync import ModelSync

__all__ = [
    "ConnectorSource",
    "DbzPostgresSource",
    "PythonAvroSource",
    "PythonSource",
    "Source",
]

SKIP = "kafka_skip"


class Source:
    """What publishes a model's changes. ``registered``/``unregistered`` run when the sync
    enters and leaves the registry."""

    def registered(self, sync: type[ModelSync]) -> None:
        """Called when ``sync`` is registered."""

    def unregistered(self, sync: type[ModelSync]) -> None:
        """Called when ``sync`` is unregistered."""

    def key_columns(self, sync: type[ModelSync]) -> list[str]:
        """The columns of the message key (default: the primary key)."""
        names = getattr(self, "key_fields", None) or ["pk"]
        return [resolve_column(sync.get_model(), name) for name in names]


def _split(value: str, separator: str) -> list[str]:
    return [part for part in (value or "").split(separator) if part]


def _append(config: dict[str, Any], key: str, entry: str, separator: str = ",") -> None:
    entries = _split(str(config.get(key, "")), separator)
    if entry not in entries:
        entries.append(entry)
    config[key] = separator.join(entries)


class ConnectorSource(Source):
    """A source that is part of a Kafka Connect connector's config.

    ``connector``: dotted path of the ``Connector`` class it joins; default
    ``MODEL_SYNC_SOURCE_CONNECTOR``. Subclasses implement :meth:`setup`.
    """

    def __init__(self, connector: str | type | None = None) -> None:
        self.connector = connector

    def connector_path(self, sync: type[ModelSync]) -> str | None:
        """The dotted path of the connector (its class's own path, however it was named)."""
        path: Any = self.connector or settings.MODEL_SYNC_SOURCE_CONNECTOR
        if not path:
            return None
        if not isinstance(path, str):
            return f"{path.__module__}.{path.__qualname__}"
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise DjangoKafkaError(
                f"{sync.__qualname__}.source: cannot import the connector {path!r}: {exc}"
            ) from exc
        return f"{cls.__module__}.{cls.__qualname__}"

    def setup(self, sync: type[ModelSync], config: dict[str, Any]) -> None:
        """Add ``sync``'s part to ``config`` (the connector's config, changed in place)."""
        raise NotImplementedError


class DbzPostgresSource(ConnectorSource):
    """The model's table in a Debezium PostgreSQL source connector.

    Added to the connector's config:

    * ``table.include.list``: ``<schema>.<table>``;
    * ``message.key.columns``: ``<schema>.<table>:<key columns>`` (``key_fields``, default
      the primary key);
    * ``column.include.list``: ``<schema>.<table>.*``, or the sync's columns (the key columns
      always, ``kafka_skip`` too for a two-way sync);
    * ``replica.identity.autoset.values``: ``<schema>.<table>:<replica_identity>`` (``FULL``:
      deletes carry the whole row, ``kafka_skip`` included);
    * when the sync sets ``topic`` (and no ``enrich_transforms``): a ``ByLogicalTableRouter``
      transform that sends the table's records from ``<topic.prefix>.<schema>.<table>`` to
      ``topic``;
    * for a two-way sync: a ``Filter`` transform (first in the chain, on Debezium's envelope)
      that drops the changes whose row has ``kafka_skip`` true, and a ``ReplaceField``
      transform (last) that leaves ``kafka_skip`` out of the published value.

    The connector's own config gives the rest (``connector.class``, ``database.*``,
    ``topic.prefix``, the converters and usually ``ExtractNewRecordState``, whose
    ``__deleted`` field and tombstones the Python sinks read).
    """

    def __init__(
        self,
        connector: str | type | None = None,
        key_fields: Sequence[str] | None = None,
        replica_identity: str = "FULL",
        msg_key_fields: Sequence[str] | None = None,
    ) -> None:
        super().__init__(connector)
        self.key_fields = list(key_fields or msg_key_fields or ["pk"])
        self.replica_identity = replica_identity

    def setup(self, sync: type[ModelSync], config: dict[str, Any]) -> None:
        table = sync.db_table()
        _append(config, "table.include.list", table)
        _append(config, "message.key.columns", f"{table}:{','.join(self.key_columns(sync))}", ";")
        _append(config, "replica.identity.autoset.values", f"{table}:{self.replica_identity}")
        if sync.fields is None:
            _append(config, "column.include.list", f"{table}.*")
        else:
            columns = [*self.key_columns(sync), *sync.columns()]
            if sync.is_bidirectional():
                columns.append(SKIP)
            for column in dict.fromkeys(columns):
                _append(config, "column.include.list", f"{table}.{column}")
        if sync.is_bidirectional():
            self._skip_filter(sync, config)
            self._drop_skip(config)
        if sync.topic and not sync.has_enrich():
            self._reroute(sync, config)

    def raw_topic(self, sync: type[ModelSync], config: dict[str, Any]) -> str:
        prefix = config.get("topic.prefix")
        if not prefix:
            raise DjangoKafkaError(
                f"{sync.__qualname__}: the config of the source connector has no "
                "'topic.prefix', which names the topics Debezium writes to."
            )
        return sync.raw_topic(str(prefix))

    def _skip_filter(self, sync: type[ModelSync], config: dict[str, Any]) -> None:
        name = f"skip{sync.__name__}"
        transforms = _split(str(config.get("transforms", "")), ",")
        if name not in transforms:
            config["transforms"] = ",".join([name, *transforms])
        prefix = f"transforms.{name}"
        config[f"{prefix}.type"] = "io.debezium.transforms.Filter"
        config[f"{prefix}.language"] = "jsr223.groovy"
        config[f"{prefix}.topic.regex"] = re.escape(self.raw_topic(sync, config))
        config[f"{prefix}.condition"] = (
            "value == null || (value.op == 'd' ? value.before?.kafka_skip != true "
            ": value.after?.kafka_skip != true)"
        )

    @staticmethod
    def _drop_skip(config: dict[str, Any]) -> None:
        _append(config, "transforms", "dropKafkaSkip")
        config["transforms.dropKafkaSkip.type"] = (
            "org.apache.kafka.connect.transforms.ReplaceField$Value"
        )
        config["transforms.dropKafkaSkip.exclude"] = SKIP

    def _reroute(self, sync: type[ModelSync], config: dict[str, Any]) -> None:
        name = f"route{sync.__name__}"
        _append(config, "transforms", name)
        prefix = f"transforms.{name}"
        config[f"{prefix}.type"] = "io.debezium.transforms.ByLogicalTableRouter"
        config[f"{prefix}.topic.regex"] = re.escape(self.raw_topic(sync, config))
        config[f"{prefix}.topic.replacement"] = sync.topic
        config[f"{prefix}.key.enforce.uniqueness"] = "false"


class PythonSource(Source):
    """The model's changes produced by this process, as JSON (``json`` serializer).

    After each ``save()`` the row (the sync's columns, by column name) is produced with the
    key columns as key (``key_fields``, default the primary key); after each ``delete()`` a
    tombstone (``None`` value) with that key. Messages are produced when the transaction
    commits, never for one that rolls back; ``durable=True`` writes them to the outbox in the
    transaction instead (at-least-once, relayed by ``./manage.py publish``). ``suppress()``
    silences them, and rows of a ``KafkaConnectSkipModel`` whose ``kafka_skip`` is true (written
    by a sink) are not produced. ``QuerySet.update()`` and ``bulk_create()`` send no signals, so
    they produce nothing; use a ``DbzPostgresSource`` when the table changes that way.
    """

    topic_class: type[TopicProducer] = TopicProducer  # type: ignore[type-abstract]

    def __init__(self, key_fields: Sequence[str] | None = None, durable: bool = False) -> None:
        self.key_fields = list(key_fields or ["pk"])
        self.durable = durable
        self._topics: dict[str, TopicProducer] = {}

    def registered(self, sync: type[ModelSync]) -> None:
        model = sync.get_model()
        uid = self._uid(sync)
        post_save.connect(self._saved(sync), sender=model, weak=False, dispatch_uid=uid)
        post_delete.connect(self._deleted(sync), sender=model, weak=False, dispatch_uid=uid)

    def unregistered(self, sync: type[ModelSync]) -> None:
        model = sync.get_model()
        uid = self._uid(sync)
        post_save.disconnect(sender=model, dispatch_uid=uid)
        post_delete.disconnect(sender=model, dispatch_uid=uid)
        self._topics.pop(uid, None)

    @staticmethod
    def _uid(sync: type[ModelSync]) -> str:
        return f"model-sync:{sync.__module__}.{sync.__qualname__}"

    def topic(self, sync: type[ModelSync]) -> TopicProducer:
        """The topic producer of ``sync`` (built once per topic name)."""
        name = sync.source_topic()
        found = self._topics.get(name)
        if found is None:
            cls = type(
                f"{sync.__name__}Producer",
                (self.topic_class,),
                {"name": name, "durable": self.durable, **self.topic_attributes(sync)},
            )
            found = self._topics[name] = cls()
        return found

    def topic_attributes(self, sync: type[ModelSync]) -> dict[str, Any]:
        return {"key_serializer": "json", "value_serializer": "json"}

    def key(self, sync: type[ModelSync], instance: models.Model) -> dict[str, Any]:
        columns = sync.get_model()._meta
        fields = {f.column: f for f in columns.concrete_fields}  # type: ignore[attr-defined]
        return {
            c: self.datum(fields[c], getattr(instance, fields[c].attname))
            for c in self.key_columns(sync)
        }

    def value(self, sync: type[ModelSync], instance: models.Model) -> dict[str, Any]:
        return {
            column: self.datum(field, getattr(instance, field.attname))
            for column, field in sync.columns().items()
        }

    def datum(self, field: models.Field[Any, Any], value: Any) -> Any:
        """A field's value as the serializer takes it (JSON: as it is; the ``json``
        serializer keeps dates, decimals, UUIDs and bytes)."""
        if isinstance(field, models.FileField):
            return str(getattr(value, "name", value) or "")
        return value

    def _saved(self, sync: type[ModelSync]) -> Any:
        def receiver(sender: Any, instance: models.Model, raw: bool = False, **kw: Any) -> None:
            if raw or getattr(instance, SKIP, False):
                return
            self.send(sync, self.key(sync, instance), self.value(sync, instance), kw.get("using"))

        return receiver

    def _deleted(self, sync: type[ModelSync]) -> Any:
        def receiver(sender: Any, instance: models.Model, **kw: Any) -> None:
            from django_messaging.kafka.connect.models import default_skip

            # what the delete wrote (the instance may hold the value of an older write)
            if hasattr(type(instance), SKIP) and default_skip():
                return
            self.send(sync, self.key(sync, instance), None, kw.get("using"))

        return receiver

    def send(self, sync: type[ModelSync], key: Any, value: Any, using: str | None) -> None:
        """Produce ``value`` with ``key`` once the transaction of ``using`` commits (through
        the outbox in that transaction when ``durable``). Suppression is read now, at the
        change, not when the transaction commits."""
        topic = self.topic(sync)
        if is_suppressed(topic.name):
            return
        if self.durable:
            topic.produce(value, key=key, on_commit=True, using=using)
            return
        transaction.on_commit(lambda: topic.produce(value, key=key), using=using)


class PythonAvroSource(PythonSource):
    """:class:`PythonSource` in Avro with the Schema Registry (``SCHEMA_REGISTRY``): the
    value schema is :meth:`AvroSchema.from_model <django_messaging.kafka.schema.avro.AvroSchema.from_model>`
    of the sync's columns, the key schema :meth:`~django_messaging.kafka.schema.avro.AvroSchema.key_from_model`
    of its key columns; both are registered under the topic's subjects on first use."""

    topic_class = AvroTopicProducer

    def value_schema(self, sync: type[ModelSync]) -> AvroSchema:
        return AvroSchema.from_model(sync.get_model(), list(sync.columns()))

    def key_schema(self, sync: type[ModelSync]) -> AvroSchema:
        return AvroSchema.key_from_model(sync.get_model(), self.key_columns(sync))

    def topic_attributes(self, sync: type[ModelSync]) -> dict[str, Any]:
        return {
            "key_schema": self.key_schema(sync).to_json(),
            "value_schema": self.value_schema(sync).to_json(),
        }

    def datum(self, field: models.Field[Any, Any], value: Any) -> Any:
        return to_avro(field, value)
