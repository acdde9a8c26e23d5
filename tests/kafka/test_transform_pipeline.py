"""The transform pipeline: each transform on its own, model consumers and reproducers on the
broker."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.test import override_settings

from django_messaging.kafka.dead_letter.header import DeadLetterHeader
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
from django_messaging.kafka.topic.reproducer import TopicReproducer
from django_messaging.kafka.topic.transforms import (
    Chain,
    ContentTypeTransform,
    DateToEpochTransform,
    EnricherTransform,
    EpochToDatetimeTransform,
    EpochToDateTransform,
    FieldTransform,
    MappingTransform,
    MessagePart,
    TransformContext,
    TransformError,
    apply_message_transforms,
    apply_transforms,
)
from django_messaging.kafka.utils.message import Header
from tests.kafka.conftest import make_consumer, make_topic, run_until
from tests.kafka.test_model import send
from tests.project.kafka_app.models import Category, Product

CTX = TransformContext()


def run(transforms, value):
    return apply_transforms(transforms, dict(value), CTX)


# --- each transform -----------------------------------------------------------------------


def test_field_transform_renames_drops_and_defaults():
    value = {"title": "a", "internal": 1, "price": None}
    assert run(
        [
            FieldTransform("title", rename_to="name"),
            FieldTransform("internal", drop=True),
            FieldTransform("price", default="0", default_if_none=True),
            FieldTransform("stock", default=list),
        ],
        value,
    ) == {"name": "a", "price": "0", "stock": []}
    assert run([FieldTransform("title", rename_to="name")], {}) == {}
    with pytest.raises(TransformError, match=r"FieldTransform\('title'\).*no field 'title'"):
        run([FieldTransform("title", required=True)], {})
    with pytest.raises(DjangoKafkaError, match="drop=True"):
        FieldTransform("x", drop=True, rename_to="y")


def test_mapping_transform_maps_through_a_dict_or_a_function():
    codes = {"A": "active", "I": "inactive"}
    assert run([MappingTransform("s", codes)], {"s": "A"}) == {"s": "active"}
    assert run([MappingTransform("s", codes)], {"s": None}) == {"s": None}
    assert run([MappingTransform("s", codes, default="?")], {"s": "X"}) == {"s": "?"}
    assert run([MappingTransform("s", codes, default=MappingTransform.KEEP)], {"s": "X"}) == {
        "s": "X"
    }
    assert run([MappingTransform("s", str.lower, target="t")], {"s": "AB"}) == {
        "s": "AB",
        "t": "ab",
    }
    with pytest.raises(TransformError, match=r"MappingTransform\('s'\).*'X' is not in"):
        run([MappingTransform("s", codes)], {"s": "X"})


def test_epoch_transforms_read_and_write_debezium_temporal_types():
    moment = dt.datetime(2024, 10, 4, 12, 30, 15, 250000, tzinfo=dt.UTC)
    ms = 1728045015250
    assert run([EpochToDateTransform("d")], {"d": 20000}) == {"d": dt.date(2024, 10, 4)}
    assert run([EpochToDateTransform("d", unit="ms")], {"d": ms}) == {"d": dt.date(2024, 10, 4)}
    assert run([EpochToDateTransform("d")], {"d": ""}) == {"d": None}
    with override_settings(USE_TZ=True):  # the aware results; without USE_TZ below
        assert run([EpochToDatetimeTransform("t")], {"t": ms}) == {"t": moment}
        assert run([EpochToDatetimeTransform("t", unit="us")], {"t": ms * 1000}) == {"t": moment}
        assert run([EpochToDatetimeTransform("t", unit="s")], {"t": -1}) == {
            "t": dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
        }
    with override_settings(USE_TZ=False):
        assert run([EpochToDatetimeTransform("t")], {"t": ms}) == {"t": moment.replace(tzinfo=None)}
    assert run([DateToEpochTransform("d")], {"d": dt.date(2024, 10, 4)}) == {"d": 20000}
    assert run([DateToEpochTransform("d")], {"d": "2024-10-04"}) == {"d": 20000}
    assert run([DateToEpochTransform("t", unit="ms")], {"t": moment}) == {"t": ms}
    assert run([DateToEpochTransform("t", unit="us")], {"t": moment.isoformat()}) == {
        "t": ms * 1000
    }
    assert run([DateToEpochTransform("t", unit="ms")], {"t": None}) == {"t": None}
    with pytest.raises(TransformError, match=r"EpochToDateTransform\('d'\).*ValueError"):
        run([EpochToDateTransform("d")], {"d": "soon"})
    with pytest.raises(DjangoKafkaError, match="unit must be one of"):
        EpochToDatetimeTransform("t", unit="days")


@pytest.mark.django_db
def test_content_type_transform_turns_labels_into_ids_and_back():
    product = ContentType.objects.get_for_model(Product)
    label = f"{product.app_label}.{product.model}"
    assert run([ContentTypeTransform("ct")], {"ct": label}) == {"ct": product.pk}
    assert run([ContentTypeTransform("ct", target="ct_id")], {"ct": label.upper()}) == {
        "ct_id": product.pk
    }
    assert run([ContentTypeTransform("ct", to="label")], {"ct": product.pk}) == {"ct": label}
    assert run([ContentTypeTransform("ct")], {"ct": None}) == {"ct": None}
    with pytest.raises(TransformError, match=r"ContentTypeTransform\('ct'\).*no content type"):
        run([ContentTypeTransform("ct")], {"ct": "nope.nothing"})
    with pytest.raises(TransformError, match=r"not an 'app_label\.model' string"):
        run([ContentTypeTransform("ct")], {"ct": "product"})


def test_enricher_adds_fields_and_chains_compose():
    def slug(value, context):
        return {"slug": value["name"].lower().replace(" ", "-"), "name": "ignored"}

    pipeline = Chain(FieldTransform("title", rename_to="name"), EnricherTransform(slug))
    assert run([pipeline], {"title": "Big Saw"}) == {"name": "Big Saw", "slug": "big-saw"}
    assert run([EnricherTransform(slug, overwrite=True)], {"name": "A"}) == {
        "name": "ignored",
        "slug": "a",
    }
    with pytest.raises(TransformError, match=r"EnricherTransform\(slug\).*KeyError"):
        run([pipeline], {})
    with pytest.raises(TransformError, match=r"EnricherTransform.*not a mapping"):
        run([EnricherTransform(lambda v, c: None)], {})


# --- model consumers on the broker ----------------------------------------------------------


def category_id(value, context):
    """An enricher that reads the database: the category named in the message."""
    name = value.pop("category_name", None)
    if name is None:
        return {}
    return {"category_id": Category.objects.get(name=name).id}


class TransformedProducts(DbzModelTopicConsumer):
    model = Product
    transforms = [
        FieldTransform("title", rename_to="name"),
        MappingTransform(
            "price", {"cheap": "1.00", "dear": "99.00"}, default=MappingTransform.KEEP
        ),
        EpochToDateTransform("released"),
        EnricherTransform(category_id),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bulk", [False, True])
def test_model_consumer_writes_transformed_values(bulk, create_topic, group, kafka_bootstrap, read):
    name = create_topic()
    Category.objects.create(id=7, name="tools")
    send(
        kafka_bootstrap,
        name,
        [
            ({"id": 1}, {"id": 1, "title": "saw", "price": "cheap", "released": 20000}),
            ({"id": 2}, {"id": 2, "title": "drill", "price": "3.50", "category_name": "tools"}),
            ({"id": 3}, {"id": 3, "title": "bad", "category_name": "garden"}),
            ({"id": 4}, {"id": 4, "title": "last", "price": "dear", "__deleted": "false"}),
        ],
    )
    topic = make_topic(TransformedProducts, name, bulk=bulk)()
    run_until(make_consumer(group, topic)(), lambda: Product.objects.filter(id=4).exists())
    assert list(
        Product.objects.order_by("id").values_list("id", "name", "price", "category_id", "released")
    ) == [
        (1, "saw", Decimal("1.00"), None, dt.date(2024, 10, 4)),
        (2, "drill", Decimal("3.50"), 7, None),
        (4, "last", Decimal("99.00"), None, None),
    ]
    [dead] = read(f"{group}.{name}.dlt", 1)
    assert json.loads(dead.key()) == {"id": 3}
    reason = Header.get(dead.headers(), DeadLetterHeader.SUMMARY).decode()
    assert "transform EnricherTransform(category_id) failed" in reason
    assert "DoesNotExist" in reason


def test_transforms_apply_to_the_key_the_value_or_both():
    steps = [
        FieldTransform("code", rename_to="id", apply_to=MessagePart.BOTH),
        MappingTransform("id", "p-{}".format, apply_to=MessagePart.KEY),
        EnricherTransform(lambda value, context: {"key_was": context.key}, name="key_was"),
        Chain(FieldTransform("tag", default="k"), apply_to=MessagePart.KEY),
    ]
    key, value = apply_message_transforms(steps, {"code": 1}, {"code": 1, "x": 2}, CTX)
    assert key == {"id": "p-1", "tag": "k"}
    assert value == {"id": 1, "x": 2, "key_was": {"id": "p-1"}}
    # without a value (a tombstone) the key is still transformed; the value stays None
    assert apply_message_transforms(steps, {"code": 2}, None, CTX) == (
        {"id": "p-2", "tag": "k"},
        None,
    )
    # only the value: as before, a pipeline of value steps
    assert run([steps[0], steps[1]], {"code": 3}) == {"id": 3}
    with pytest.raises(TransformError, match=r"applies to the key.*int, not a dict"):
        apply_message_transforms(steps, 7, {"code": 1}, CTX)
    with pytest.raises(DjangoKafkaError, match="apply_to"):
        FieldTransform("x", apply_to="key")  # type: ignore[arg-type]


class KeyedProducts(DbzModelTopicConsumer):
    model = Product
    transforms = [
        FieldTransform("code", rename_to="id", apply_to=MessagePart.BOTH),
        FieldTransform("title", rename_to="name"),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bulk", [False, True])
def test_model_consumer_looks_rows_up_by_the_transformed_key(
    bulk, create_topic, group, kafka_bootstrap
):
    name = create_topic()
    send(
        kafka_bootstrap,
        name,
        [
            ({"code": 1}, {"code": 1, "title": "saw"}),
            ({"code": 2}, {"code": 2, "title": "drill"}),
            ({"code": 2}, None),  # the tombstone's key is transformed too
            ({"code": 1}, {"code": 1, "title": "big saw"}),
            ({"code": 3}, {"code": 3, "title": "last"}),
        ],
    )
    topic = make_topic(KeyedProducts, name, bulk=bulk)()
    run_until(make_consumer(group, topic)(), lambda: Product.objects.filter(id=3).exists())
    assert list(Product.objects.order_by("id").values_list("id", "name")) == [
        (1, "big saw"),
        (3, "last"),
    ]


# --- reproducer -------------------------------------------------------------------------------


class Augmented(TopicReproducer):
    transforms = [
        FieldTransform("__deleted", drop=True),
        EpochToDateTransform("released"),
        DateToEpochTransform("released", unit="ms", target="released_ms"),
        EnricherTransform(lambda value, context: {"source": context.topic_name}, name="source"),
    ]


@pytest.mark.django_db(transaction=True)
def test_reproducer_produces_augmented_events_to_the_namespace(
    create_topic, group, kafka_bootstrap, read
):
    name = create_topic()
    send(
        kafka_bootstrap,
        name,
        [
            ({"id": 1}, {"id": 1, "released": 1, "__deleted": "false"}),
            ({"id": 1}, None),
            ({"id": 2}, {"id": 2, "released": None}),
        ],
    )
    namespace = f"ns{group}"
    kafka_settings = {**settings.MESSAGING["KAFKA"], "REPRODUCER_NAMESPACE": namespace}
    topic = make_topic(Augmented, name)()
    with override_settings(MESSAGING={**settings.MESSAGING, "KAFKA": kafka_settings}):
        consumer = make_consumer(group, topic)()
        run_until(consumer, lambda: len(read(f"{namespace}.{name}", 3, timeout=0.5)) == 3)
    out = read(f"{namespace}.{name}", 3)
    assert [(json.loads(m.key()), m.value() and json.loads(m.value())) for m in out] == [
        ({"id": 1}, {"id": 1, "released": "1970-01-02", "released_ms": 86400000, "source": name}),
        ({"id": 1}, None),
        ({"id": 2}, {"id": 2, "released": None, "released_ms": None, "source": name}),
    ]


class KeyedReproducer(TopicReproducer):
    transforms = [MappingTransform("id", "p-{}".format, apply_to=MessagePart.BOTH)]


@pytest.mark.django_db(transaction=True)
def test_reproducer_transforms_keys_of_events_and_tombstones(
    create_topic, group, kafka_bootstrap, read
):
    name = create_topic()
    target = create_topic()
    send(kafka_bootstrap, name, [({"id": 1}, {"id": 1, "x": 1}), ({"id": 1}, None)])
    topic = make_topic(KeyedReproducer, name, reproduce_name=target)()
    run_until(make_consumer(group, topic)(), lambda: len(read(target, 2, timeout=0.5)) == 2)
    out = read(target, 2)
    assert [(json.loads(m.key()), m.value() and json.loads(m.value())) for m in out] == [
        ({"id": "p-1"}, {"id": "p-1", "x": 1}),
        ({"id": "p-1"}, None),
    ]


def test_reproducer_without_a_target_says_what_to_set():
    topic = make_topic(Augmented, "src")()

    class Msg:
        def topic(self):
            return "src"

    with pytest.raises(DjangoKafkaError, match="REPRODUCER_NAMESPACE"):
        topic.get_reproduce_name(Msg())


@pytest.mark.django_db(transaction=True)
def test_a_reproduce_the_broker_refuses_is_dead_lettered_not_lost(
    create_topic, group, kafka_bootstrap, read, monkeypatch
):
    """The test broker takes any topic name, so its refusal is simulated at ``deliver``."""
    from django_messaging.kafka.topic import reproducer

    def refused(topic, *args, **kwargs):
        raise DjangoKafkaError(f"delivery to {topic!r} failed: MSG_SIZE_TOO_LARGE")

    monkeypatch.setattr(reproducer, "deliver", refused)
    name = create_topic()
    send(kafka_bootstrap, name, [({"id": 1}, {"id": 1})])
    topic = make_topic(Augmented, name, reproduce_name=f"{name}.out")()
    dlt = f"{group}.{name}.dlt"
    consumer = make_consumer(group, topic)()
    run_until(consumer, lambda: read(dlt, 1, timeout=0.5))
    [dead] = read(dlt, 1)
    assert json.loads(dead.value()) == {"id": 1}
    reason = Header.get(dead.headers(), DeadLetterHeader.SUMMARY).decode()
    assert f"delivery to '{name}.out' failed" in reason
