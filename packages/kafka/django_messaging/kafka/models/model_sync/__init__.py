"""Model sync: declare in one class how a Django model and a Kafka topic are kept in step.

    from django_messaging.kafka.models.model_sync import ModelSync, PythonAvroSink

    class OrderSync(ModelSync):
        model = Order
        topic = "orders"
        sink = PythonAvroSink()

Put them in an app's ``model_syncs.py``; see :class:`ModelSync`.
"""

from django_messaging.kafka.models.model_sync.enricher import (
    ModelSyncAvroEnricher,
    ModelSyncEnricher,
    ModelSyncEnricherConsumer,
)
from django_messaging.kafka.models.model_sync.fields import ExcludeFields, IncludeFields
from django_messaging.kafka.models.model_sync.sink import (
    ConnectorSink,
    DbzJdbcSink,
    PythonAvroSink,
    PythonSink,
    PythonSinkAvroTopic,
    PythonSinkTopic,
    Relation,
    Sink,
)
from django_messaging.kafka.models.model_sync.source import (
    ConnectorSource,
    DbzPostgresSource,
    PythonAvroSource,
    PythonSource,
    Source,
)
from django_messaging.kafka.models.model_sync.sync import ModelSync
from django_messaging.kafka.models.model_sync.transforms import (
    RelationTransform,
    SyncMethodTransform,
)
from django_messaging.kafka.topic.transforms import MessagePart

__all__ = [
    "ConnectorSink",
    "ConnectorSource",
    "DbzJdbcSink",
    "DbzPostgresSource",
    "ExcludeFields",
    "IncludeFields",
    "MessagePart",
    "ModelSync",
    "ModelSyncAvroEnricher",
    "ModelSyncEnricher",
    "ModelSyncEnricherConsumer",
    "PythonAvroSink",
    "PythonAvroSource",
    "PythonSink",
    "PythonSinkAvroTopic",
    "PythonSinkTopic",
    "PythonSource",
    "Relation",
    "RelationTransform",
    "Sink",
    "Source",
    "SyncMethodTransform",
]
