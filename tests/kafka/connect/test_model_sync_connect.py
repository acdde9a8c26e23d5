"""``ModelSync`` and Kafka Connect: Debezium source configs, JDBC sink connectors, publishing."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from django_messaging.core.checks import check_messaging_settings
from django_messaging.kafka import kafka
from django_messaging.kafka.connect.connector import Connector
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.models.model_sync import (
    DbzJdbcSink,
    DbzPostgresSource,
    ExcludeFields,
    IncludeFields,
    ModelSync,
    PythonSink,
)
from tests.kafka.connect.connect_server import FakeConnect
from tests.project.kafka_app.models import SkipItem, SyncLine, SyncOrder

SOURCE = f"{__name__}.ShopSource"
REGISTRY = "http://registry:8081"
DATABASE = {"HOST": "db.internal", "PORT": 5432, "NAME": "shop", "USER": "sink", "PASSWORD": "pw"}


class ShopSource(Connector):
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "db.internal",
        "database.dbname": "shop",
        "topic.prefix": "shop",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.handling.mode": "rewrite",
        "transforms.unwrap.drop.tombstones": "false",
    }


class OtherSource(Connector):
    config = {"connector.class": "io.debezium.connector.postgresql.PostgresConnector"}


@pytest.fixture
def sync_connect(
    connect_settings: Callable[..., dict[str, Any]], syncs: None
) -> Callable[..., dict[str, Any]]:
    def apply(**keys: Any) -> dict[str, Any]:
        return connect_settings(
            **{
                "MODEL_SYNC_SOURCE_CONNECTOR": SOURCE,
                "CONNECT_DATABASE": DATABASE,
                "SCHEMA_REGISTRY": {"url": REGISTRY},
                **keys,
            }
        )

    apply()
    return apply


def _declare_shop() -> tuple[type[ModelSync], ...]:
    class OrderCdc(ModelSync):
        model = SyncOrder
        source = DbzPostgresSource()

    class LineCdc(ModelSync):
        model = SyncLine
        topic = "lines"
        fields = IncludeFields(["sku"])
        source = DbzPostgresSource(key_fields=["id", "order"])

    class ItemSync(ModelSync):
        model = SkipItem
        topic = "items"
        source = DbzPostgresSource()
        sink = DbzJdbcSink()

    class Elsewhere(ModelSync):
        model = SyncOrder
        source = DbzPostgresSource(connector=OtherSource)

    return OrderCdc, LineCdc, ItemSync, Elsewhere


SHOP_FINAL = {
    **ShopSource.config,
    "table.include.list": "public.test_kafka_syncorder,public.test_kafka_syncline,"
    "public.test_kafka_skipitem",
    "message.key.columns": "public.test_kafka_syncorder:id;public.test_kafka_syncline:id,order_id;"
    "public.test_kafka_skipitem:id",
    "replica.identity.autoset.values": "public.test_kafka_syncorder:FULL,"
    "public.test_kafka_syncline:FULL,public.test_kafka_skipitem:FULL",
    "column.include.list": "public.test_kafka_syncorder.*,public.test_kafka_syncline.id,"
    "public.test_kafka_syncline.order_id,public.test_kafka_syncline.sku_code,"
    "public.test_kafka_skipitem.*",
    "transforms": "skipItemSync,unwrap,routeLineCdc,dropKafkaSkip,routeItemSync",
    "transforms.routeLineCdc.type": "io.debezium.transforms.ByLogicalTableRouter",
    "transforms.routeLineCdc.topic.regex": r"shop\.public\.test_kafka_syncline",
    "transforms.routeLineCdc.topic.replacement": "lines",
    "transforms.routeLineCdc.key.enforce.uniqueness": "false",
    "transforms.skipItemSync.type": "io.debezium.transforms.Filter",
    "transforms.skipItemSync.language": "jsr223.groovy",
    "transforms.skipItemSync.topic.regex": r"shop\.public\.test_kafka_skipitem",
    "transforms.skipItemSync.condition": "value == null || (value.op == 'd' ? "
    "value.before?.kafka_skip != true : value.after?.kafka_skip != true)",
    "transforms.dropKafkaSkip.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "transforms.dropKafkaSkip.exclude": "kafka_skip",
    "transforms.routeItemSync.type": "io.debezium.transforms.ByLogicalTableRouter",
    "transforms.routeItemSync.topic.regex": r"shop\.public\.test_kafka_skipitem",
    "transforms.routeItemSync.topic.replacement": "items",
    "transforms.routeItemSync.key.enforce.uniqueness": "false",
}

ITEM_SINK = {
    "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
    "connection.url": "jdbc:postgresql://db.internal:5432/shop",
    "connection.username": "sink",
    "connection.password": "pw",
    "key.converter": "io.confluent.connect.avro.AvroConverter",
    "key.converter.schema.registry.url": REGISTRY,
    "value.converter": "io.confluent.connect.avro.AvroConverter",
    "value.converter.schema.registry.url": REGISTRY,
    "topics": "items",
    "collection.name.format": "public.test_kafka_skipitem",
    "insert.mode": "upsert",
    "delete.enabled": "true",
    "primary.key.mode": "record_key",
    "primary.key.fields": "id",
    "schema.evolution": "none",
    "transforms": "dropKafkaSkip,addKafkaSkip,castKafkaSkip",
    "transforms.dropKafkaSkip.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "transforms.dropKafkaSkip.exclude": "kafka_skip",
    "transforms.addKafkaSkip.type": "org.apache.kafka.connect.transforms.InsertField$Value",
    "transforms.addKafkaSkip.static.field": "kafka_skip",
    "transforms.addKafkaSkip.static.value": "true",
    "transforms.castKafkaSkip.type": "org.apache.kafka.connect.transforms.Cast$Value",
    "transforms.castKafkaSkip.spec": "kafka_skip:boolean",
}


def test_sources_are_merged_into_their_connectors_config(
    sync_connect: Callable[..., Any],
) -> None:
    _declare_shop()
    assert ShopSource().final_config == SHOP_FINAL
    assert ShopSource.config["transforms"] == "unwrap"  # the class's own config is untouched
    assert OtherSource().final_config["table.include.list"] == "public.test_kafka_syncorder"
    assert ShopSource().get_config() == {**SHOP_FINAL, "name": "ShopSource"}

    sync_connect(MODEL_SYNC_DB_SCHEMA="sales", MODEL_SYNC_SOURCE_CONNECTOR=None)
    assert ShopSource().final_config == ShopSource.config  # read live: no default connector
    assert OtherSource().final_config["message.key.columns"] == "sales.test_kafka_syncorder:id"


def test_jdbc_sinks_are_connectors_of_their_own(sync_connect: Callable[..., Any]) -> None:
    _declare_shop()
    sink = kafka.connectors["ItemSyncSinkConnector"]
    assert sink().get_config() == {**ITEM_SINK, "name": "ItemSyncSinkConnector"}

    class ReplicaSink(ModelSync):
        model = SyncLine
        topic = "lines"
        fields = ExcludeFields(["sku"])
        sink = DbzJdbcSink(database="default", driver="postgresql", extra_config={"tasks.max": "2"})

    config = kafka.connectors["ReplicaSinkSinkConnector"]().final_config
    assert {k: v for k, v in config.items() if k.startswith("transforms") or k == "tasks.max"} == {
        "transforms": "fields",
        "transforms.fields.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
        "transforms.fields.exclude": "sku_code",
        "tasks.max": "2",
    }
    from django.conf import settings

    assert config["connection.url"].endswith(f"/{settings.DATABASES['default']['NAME']}")
    kafka.model_syncs.unregister(f"{__name__}.{ReplicaSink.__qualname__}")
    assert "ReplicaSinkSinkConnector" not in kafka.connectors


def test_connector_configs_that_cannot_be_built_say_why(sync_connect: Callable[..., Any]) -> None:
    class Lines(ModelSync):
        model = SyncLine
        topic = "lines"
        sink = DbzJdbcSink()

    sink = kafka.connectors["LinesSinkConnector"]
    sync_connect(CONNECT_DATABASE=None)
    with pytest.raises(DjangoKafkaError, match=r"set MESSAGING\['KAFKA'\]\['CONNECT_DATABASE'\]"):
        sink().get_config()
    sync_connect(CONNECT_DATABASE="replica")
    with pytest.raises(DjangoKafkaError, match="no DATABASES entry 'replica'"):
        sink().get_config()
    sync_connect(SCHEMA_REGISTRY={})
    with pytest.raises(DjangoKafkaError, match="SCHEMA_REGISTRY"):
        sink().get_config()

    class Routed(ModelSync):
        model = SyncOrder
        topic = "orders"
        source = DbzPostgresSource(connector=OtherSource)

    with pytest.raises(DjangoKafkaError, match=r"has no 'topic\.prefix'"):
        _ = OtherSource().final_config


def test_kafka_connect_publishes_the_generated_configs(
    sync_connect: Callable[..., Any],
    connect_server: FakeConnect,
    register_connector: Callable[[type], type],
) -> None:
    register_connector(ShopSource)
    _declare_shop()
    out = io.StringIO()
    call_command("kafka_connect", "--validate", "--publish", stdout=out, stderr=out)
    assert connect_server.connectors["ShopSource"].config == {**SHOP_FINAL, "name": "ShopSource"}
    assert connect_server.connectors["ItemSyncSinkConnector"].config == {
        **ITEM_SINK,
        "name": "ItemSyncSinkConnector",
    }
    assert "pw" not in out.getvalue()


def test_system_checks_of_the_model_sync_settings(settings: Any) -> None:
    settings.MESSAGING = {
        "KAFKA": {
            "MODEL_SYNC_CONSUMER": "tests.nowhere.Consumer",
            "MODEL_SYNC_DB_SCHEMA": " ",
            "CONNECT_DATABASE": {"HOST": "db", "PASSWORD": "t0p-s3cret"},
        }
    }
    messages = [
        f"{m.id} {m.msg}"
        for m in check_messaging_settings()
        if "MODEL_SYNC" in m.msg or "CONNECT_DATABASE" in m.msg
    ]
    text = "\n".join(messages)
    assert "MODEL_SYNC_CONSUMER" in text and "tests.nowhere" in text
    assert "MODEL_SYNC_DB_SCHEMA" in text and "must be a schema name" in text
    assert "CONNECT_DATABASE" in text and "misses NAME, USER" in text
    assert "t0p-s3cret" not in text


def test_a_python_sink_is_no_connector(sync_connect: Callable[..., Any]) -> None:
    before = set(kafka.connectors)

    class Lines(ModelSync):
        model = SyncLine
        sink = PythonSink()

    assert set(kafka.connectors) == before


def test_an_enriched_source_is_not_rerouted(sync_connect: Callable[..., Any]) -> None:
    from django_messaging.kafka.topic.transforms import FieldTransform

    class Enriched(ModelSync):
        model = SyncOrder
        topic = "orders"
        source = DbzPostgresSource()
        enrich_transforms = [FieldTransform("ratio", drop=True)]

    class Written(ModelSync):
        model = SyncLine
        enriched_topic = "lines-enriched"
        sink = DbzJdbcSink()

    config = ShopSource().final_config
    assert config["transforms"] == "unwrap"  # the enricher reads the raw topic, not a route
    assert config["table.include.list"] == "public.test_kafka_syncorder"
    assert kafka.connectors["WrittenSinkConnector"]().final_config["topics"] == "lines-enriched"
