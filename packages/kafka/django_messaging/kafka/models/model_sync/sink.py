"""The sinks of a ``ModelSync``: what writes the topic's messages into the model.

* :class:`DbzJdbcSink`: a Debezium JDBC sink connector, registered as a connector of this
  project (``<Sync>SinkConnector``) that ``kafka_connect`` publishes.
* :class:`PythonSink` (JSON) and :class:`PythonAvroSink` (Avro, Schema Registry): a
  :class:`~django_messaging.kafka.topic.model.ModelTopicConsumer` on a consumer of this project
  (``consumer=`` or ``MODEL_SYNC_CONSUMER``), which ``kafka_consume`` runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from confluent_kafka.serialization import MessageField
from django.conf import settings as django_settings
from django.db import models
from django.utils.module_loading import import_string

from django_messaging.kafka.conf import settings
from django_messaging.kafka.connect.connector import Connector
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.models.model_sync.fields import ExcludeFields, IncludeFields
from django_messaging.kafka.models.model_sync.transforms import RelationTransform
from django_messaging.kafka.relations import ModelRelation
from django_messaging.kafka.schema.avro import from_avro, resolve_column
from django_messaging.kafka.topic.avro import AvroTopicConsumer
from django_messaging.kafka.topic.model import ModelTopicConsumer
from django_messaging.kafka.topic.transforms import MessagePart
from django_messaging.kafka.utils.message import Message

if TYPE_CHECKING:
    from django_messaging.kafka.models.model_sync.sync import ModelSync

__all__ = [
    "ConnectorSink",
    "DbzJdbcSink",
    "PythonAvroSink",
    "PythonSink",
    "PythonSinkAvroTopic",
    "PythonSinkTopic",
    "Relation",
    "Sink",
]

SKIP = "kafka_skip"


class Sink:
    """What writes a topic into a model. ``registered``/``unregistered`` run when the sync
    enters and leaves the registry."""

    def registered(self, sync: type[ModelSync]) -> None:
        """Called when ``sync`` is registered."""

    def unregistered(self, sync: type[ModelSync]) -> None:
        """Called when ``sync`` is unregistered."""


class ConnectorSink(Sink):
    """A sink that is a Kafka Connect connector of its own: registered in
    ``kafka.connectors`` as ``<Sync>SinkConnector``, its config from :meth:`config`."""

    def __init__(self) -> None:
        self._connectors: dict[str, tuple[type[Connector], str]] = {}

    def config(self, sync: type[ModelSync]) -> dict[str, Any]:
        raise NotImplementedError

    def connector_class(self, sync: type[ModelSync]) -> type[Connector]:
        sink = self

        class SinkConnector(Connector):
            @property
            def config(self) -> dict[str, Any]:
                return sink.config(sync)

        SinkConnector.__name__ = SinkConnector.__qualname__ = f"{sync.__name__}SinkConnector"
        SinkConnector.__module__ = sync.__module__
        return SinkConnector

    def registered(self, sync: type[ModelSync]) -> None:
        from django_messaging.kafka import kafka

        cls = self.connector_class(sync)
        key = kafka.connectors.register(cls)
        self._connectors[sync.__qualname__] = (cls, key)

    def unregistered(self, sync: type[ModelSync]) -> None:
        from django_messaging.kafka import kafka

        found = self._connectors.pop(sync.__qualname__, None)
        if found is not None:
            kafka.connectors.unregister(found[1])


class DbzJdbcSink(ConnectorSink):
    """Debezium's JDBC sink connector writing the topic into the model's table.

    Defaults: upsert on the key columns (``insert.mode=upsert``, ``primary.key.mode=record_key``),
    tombstones delete the row (``delete.enabled``), the table's schema is left to Django's
    migrations (``schema.evolution=none``). Values are read with Confluent's ``AvroConverter``
    from the ``SCHEMA_REGISTRY`` url. ``fields`` (default: the sync's) becomes a
    ``ReplaceField`` transform. For a two-way sync the written rows get ``kafka_skip=true``
    (``ReplaceField`` + ``InsertField`` + ``Cast``), so the source does not publish them again.
    ``database`` (default ``CONNECT_DATABASE``) is where Kafka Connect reaches the database;
    ``extra_config`` is merged last.
    """

    def __init__(
        self,
        topics: Sequence[str] | str | None = None,
        insert_mode: str = "upsert",
        delete_enabled: bool = True,
        pk_mode: str = "record_key",
        pk_fields: Sequence[str] | None = None,
        fields: IncludeFields | ExcludeFields | None = None,
        database: dict[str, Any] | str | None = None,
        driver: str = "postgresql",
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.topics = [topics] if isinstance(topics, str) else list(topics) if topics else None
        self.insert_mode = insert_mode
        self.delete_enabled = delete_enabled
        self.pk_mode = pk_mode
        self.pk_fields = list(pk_fields) if pk_fields else None
        self.fields = fields
        self.database = database
        self.driver = driver
        self.extra_config = dict(extra_config or {})

    def db(self, sync: type[ModelSync]) -> dict[str, Any]:
        database = self.database if self.database is not None else settings.CONNECT_DATABASE
        if database is None:
            raise DjangoKafkaError(
                f"{sync.__qualname__}.sink: set MESSAGING['KAFKA']['CONNECT_DATABASE'] (HOST, "
                "PORT, NAME, USER, PASSWORD of the database as Kafka Connect reaches it) or "
                "DbzJdbcSink(database=...)."
            )
        if isinstance(database, str):
            try:
                return dict(django_settings.DATABASES[database])
            except KeyError:
                raise DjangoKafkaError(
                    f"{sync.__qualname__}.sink: no DATABASES entry {database!r}."
                ) from None
        return dict(database)

    def connection_url(self, db: dict[str, Any]) -> str:
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"jdbc:{self.driver}://{db['HOST']}{port}/{db['NAME']}"

    def config(self, sync: type[ModelSync]) -> dict[str, Any]:
        registry = (settings.SCHEMA_REGISTRY or {}).get("url")
        if not registry:
            raise DjangoKafkaError(
                f"{sync.__qualname__}.sink: the JDBC sink reads Avro; set "
                "MESSAGING['KAFKA']['SCHEMA_REGISTRY']['url']."
            )
        model = sync.get_model()
        db = self.db(sync)
        pk_fields = [resolve_column(model, f) for f in self.pk_fields or ["pk"]]
        config: dict[str, Any] = {
            "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
            "connection.url": self.connection_url(db),
            "connection.username": db["USER"],
            "connection.password": db["PASSWORD"],
            "key.converter": "io.confluent.connect.avro.AvroConverter",
            "key.converter.schema.registry.url": registry,
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "value.converter.schema.registry.url": registry,
            "topics": ",".join(self.topics or [sync.get_topic()]),
            "collection.name.format": sync.db_table(),
            "insert.mode": self.insert_mode,
            "delete.enabled": str(self.delete_enabled).lower(),
            "primary.key.mode": self.pk_mode,
            "primary.key.fields": ",".join(pk_fields),
            "schema.evolution": "none",
        }
        transforms: list[str] = []
        fields = self.fields if self.fields is not None else sync.fields
        if fields is not None:
            op = "exclude" if isinstance(fields, ExcludeFields) else "include"
            columns = [resolve_column(model, f) for f in fields]
            if op == "include":
                columns = list(dict.fromkeys([*pk_fields, *columns]))
            transforms.append("fields")
            config["transforms.fields.type"] = (
                "org.apache.kafka.connect.transforms.ReplaceField$Value"
            )
            config[f"transforms.fields.{op}"] = ",".join(columns)
        if sync.is_bidirectional():
            transforms += ["dropKafkaSkip", "addKafkaSkip", "castKafkaSkip"]
            config["transforms.dropKafkaSkip.type"] = (
                "org.apache.kafka.connect.transforms.ReplaceField$Value"
            )
            config["transforms.dropKafkaSkip.exclude"] = SKIP
            config["transforms.addKafkaSkip.type"] = (
                "org.apache.kafka.connect.transforms.InsertField$Value"
            )
            config["transforms.addKafkaSkip.static.field"] = SKIP
            config["transforms.addKafkaSkip.static.value"] = "true"
            config["transforms.castKafkaSkip.type"] = (
                "org.apache.kafka.connect.transforms.Cast$Value"
            )
            config["transforms.castKafkaSkip.spec"] = f"{SKIP}:boolean"
        if transforms:
            config["transforms"] = ",".join(transforms)
        config.update(self.extra_config)
        return config


@dataclass(frozen=True)
class Relation:
    """A row a synced message needs before it is written: ``model`` with ``id_field`` equal
    to the message's ``value_field``. Foreign keys that are neither ``null`` nor ``blank`` are
    found on their own; declare others, or lookups by another field, with a ``Relation``. A
    message whose value misses the field (or has ``None``) needs nothing.

    ``fk``: the foreign key of the model to set to that row (a :class:`RelationTransform`
    runs before the sync's ``consume_transforms``); ``value_field`` may then be any field of
    the message, not only a column, and the foreign key's own column in the message is
    ignored. It replaces the relation found on its own for that foreign key.

    ``lookup``: the message key's field ``value_field`` finds the row through this ORM lookup
    (``"order__number"``) instead of being a column of the model: the key names the row by
    its related row. The key's columns stay lookups beside it; a deletion is looked up the
    same way. Such a lookup needs ``bulk = False`` (the default), as Django's
    ``update_or_create`` follows relations and a batched upsert cannot."""

    model: type[models.Model]
    id_field: str
    value_field: str
    fk: str | None = None
    lookup: str | None = None

    def of(self, value: dict[str, Any]) -> ModelRelation | None:
        found = value.get(self.value_field)
        return None if found is None else ModelRelation(self.model, self.id_field, found)

    def to_transform(self) -> RelationTransform | None:
        if not self.fk:
            return None
        return RelationTransform(self.value_field, self.fk, self.model, self.id_field)


class PythonSinkTopic(ModelTopicConsumer):
    """The topic of a :class:`PythonSink`: a ``ModelTopicConsumer`` of the sync's model.

    Lookup: the key's columns (a dict key; a scalar key is the primary key), and its fields
    named by a :class:`Relation` with ``lookup`` through that lookup. Deletion: a
    tombstone, or a true ``deletion_key`` field (``__deleted``, as Debezium's
    ``ExtractNewRecordState`` writes it; ``None`` turns that off). Only the sync's columns
    are written (``kafka_skip`` never: a ``KafkaConnectSkipModel`` row written here gets
    ``True``), each decoded by :meth:`decode`, then the sync's ``consume_transforms`` run on
    the row by column.
    A message waits (relations resolver) until the rows of its :class:`Relation` s exist.
    """

    deletion_key: ClassVar[str | None] = "__deleted"
    key_deserializer: ClassVar[Any] = "json"
    value_deserializer: ClassVar[Any] = "json"

    def __init__(self, sync: type[ModelSync], relations: Sequence[Relation] = ()) -> None:
        self.model_sync = sync
        self._name = sync.get_topic()
        self.model = sync.get_model()  # type: ignore[misc]
        self.relations = tuple(relations)
        swaps = [r.to_transform() for r in self.relations]
        self.transforms = (  # type: ignore[misc]
            *[t for t in swaps if t is not None],
            *sync.consume_transforms,
        )
        fks = {r.fk for r in self.relations if r.fk}
        self._columns = {
            column: field
            for column, field in sync.columns().items()
            if column != SKIP and field.name not in fks
        }
        #: message fields kept as they are for the relation transforms
        self._passed = [r.value_field for r in self.relations if r.fk]
        #: fields of the key that find the row through a relation
        self._lookups = {r.value_field: r.lookup for r in self.relations if r.lookup}
        if self._lookups and self.bulk:
            raise DjangoKafkaError(
                f"{sync.__qualname__}.sink: a Relation with lookup finds rows through a "
                "relation, which the batched upsert cannot; use a topic_class with bulk = False."
            )
        if self.relations:
            self.get_relations = self._relations_of

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} of {self.model_sync.__qualname__}>"

    def is_deletion(self, model: type[models.Model], key: Any, value: Any) -> bool:
        if value is None:
            return True
        if self.deletion_key is None or not isinstance(value, dict):
            return False
        deleted = value.get(self.deletion_key, False)
        if isinstance(deleted, str):
            return deleted.strip().lower() == "true"
        return bool(deleted)

    def get_lookup_kwargs(self, model: type[models.Model], key: Any, value: Any) -> dict[str, Any]:
        if not isinstance(key, dict):
            if key is None:
                raise DjangoKafkaError(
                    f"{self.model_sync.__qualname__}: a message of {self.name!r} has no key; the "
                    "key names the row (its key columns)."
                )
            return {"pk": key}
        fields = {f.column: f for f in model._meta.concrete_fields}
        lookup: dict[str, Any] = {}
        for name, found in key.items():
            if name in self._lookups:
                lookup[self._lookups[name]] = found
            elif name in fields:
                lookup[fields[name].attname] = self.decode(fields[name], found)
        if not lookup:
            raise DjangoKafkaError(
                f"{self.model_sync.__qualname__}: the key {sorted(key)} of a message of "
                f"{self.name!r} has no column of {model.__name__}."
            )
        return lookup

    def transform_message(
        self,
        model: type[models.Model],
        key: Any,
        value: Any,
        parts: MessagePart = MessagePart.BOTH,
    ) -> tuple[Any, Any]:
        """The value as a row of the sync's columns, each decoded (and the fields the relation
        transforms read), then ``(key, row)`` through the transforms."""
        if isinstance(value, dict) and parts & MessagePart.VALUE:
            row = {
                column: self.decode(field, value[column])
                for column, field in self._columns.items()
                if column in value
            }
            for name in self._passed:
                if name in value:
                    row[name] = value[name]
            value = row
        return super().transform_message(model, key, value, parts)

    def transform(self, model: type[models.Model], value: dict[str, Any]) -> dict[str, Any]:
        """The transformed row by field attname (transforms see columns, as messages have
        them), then ``transform_<field>`` methods."""
        columns = self._columns
        row = {(columns[k].attname if k in columns else k): v for k, v in value.items()}
        return super().transform(model, row)

    def decode(self, field: models.Field[Any, Any], value: Any) -> Any:
        """A value of the message as the field's Python value (``field.to_python``: ISO
        dates, decimal strings, base64 bytes of the ``json`` serializer)."""
        if value is None or isinstance(field, models.JSONField):
            return value
        return field.to_python(value)

    def _relations_of(self, msg: Message) -> Iterator[ModelRelation]:
        value = self.deserialize(msg.value(), MessageField.VALUE, msg.headers())
        if not isinstance(value, dict) or self.is_deletion(self.model, None, value):  # type: ignore[arg-type]
            return
        for relation in self.relations:
            found = relation.of(value)
            if found is not None:
                yield found


class PythonSinkAvroTopic(AvroTopicConsumer, PythonSinkTopic):
    """:class:`PythonSinkTopic` of Avro messages (writer schema from the registry)."""

    def decode(self, field: models.Field[Any, Any], value: Any) -> Any:
        return from_avro(field, value)


class PythonSink(Sink):
    """The topic written into the model by a consumer of this project, JSON messages.

    ``consumer``: dotted path of the ``Consumer`` class that runs it (default
    ``MODEL_SYNC_CONSUMER``); it is registered for ``kafka_consume`` if it was not.
    ``relations``: extra :class:`Relation` s (the required foreign keys are found on their
    own). ``topic_class``: a subclass of :class:`PythonSinkTopic` to use.
    """

    topic_class: type[PythonSinkTopic] = PythonSinkTopic

    def __init__(
        self,
        consumer: str | type | None = None,
        relations: Sequence[Relation] = (),
        topic_class: type[PythonSinkTopic] | None = None,
    ) -> None:
        self.consumer = consumer
        self.relations = tuple(relations)
        if topic_class is not None:
            self.topic_class = topic_class

    def consumer_path(self, sync: type[ModelSync]) -> str | None:
        """The registry key (``module.ClassName``) of the consumer, ``None`` when unset."""
        path: Any = self.consumer or settings.MODEL_SYNC_CONSUMER
        if not path:
            return None
        if not isinstance(path, str):
            return f"{path.__module__}.{path.__name__}"
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise DjangoKafkaError(
                f"{sync.__qualname__}.sink: cannot import the consumer {path!r}: {exc}"
            ) from exc
        return f"{cls.__module__}.{cls.__name__}"

    def all_relations(self, sync: type[ModelSync]) -> list[Relation]:
        """The declared relations, then the foreign keys that are neither null nor blank
        (on the target field of the key, usually the primary key)."""
        found = list(self.relations)
        declared = {r.value_field for r in found} | {r.fk for r in found if r.fk}
        columns = sync.columns()
        for column, field in columns.items():
            if (
                isinstance(field, models.ForeignKey)
                and not (field.null or field.blank)
                and not field.remote_field.parent_link
                and column not in declared
                and field.name not in declared
            ):
                found.append(
                    Relation(field.related_model, field.target_field.attname, column)  # type: ignore[arg-type]
                )
        return found

    def make_topic(self, sync: type[ModelSync]) -> PythonSinkTopic:
        return self.topic_class(sync, self.all_relations(sync))


class PythonAvroSink(PythonSink):
    """:class:`PythonSink` of Avro messages (Confluent wire format, Schema Registry)."""

    topic_class = PythonSinkAvroTopic
