"""Master side: what is published, when, and with which payload (captured by ``CqrsBroker``)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import signals
from django.db.models.deletion import Collector

from django_messaging.core import suppress
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.metas import MasterMeta
from django_messaging.cqrs.registries import MasterRegistry
from django_messaging.cqrs.signals import post_bulk_create, post_update
from django_messaging.cqrs.tracker import CQRSTracker
from django_messaging.cqrs.transport.rabbit_mq import encode
from tests.project.cqrs_app.models import (
    Author,
    Chosen,
    Filtered,
    Product,
    ProductRef,
    Publisher,
    RawBase,
    RawProxy,
    UuidItem,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_publishes_the_nine_wire_keys(produced):
    product = Product.objects.create(name="desk", price=Decimal("10.50"))
    assert len(produced) == 1
    body = json.loads(encode(produced[0]))
    assert sorted(body) == sorted(
        [
            "signal_type",
            "cqrs_id",
            "instance_data",
            "previous_data",
            "instance_pk",
            "correlation_id",
            "retries",
            "expires",
            "meta",
        ]
    )
    assert body["signal_type"] == "SAVE"
    assert body["cqrs_id"] == "product"
    assert body["instance_pk"] == product.pk
    assert body["instance_data"]["price"] == "10.50"
    assert body["instance_data"]["cqrs_revision"] == 0
    assert " " in body["instance_data"]["cqrs_updated"]  # str(datetime), as django-cqrs sends
    assert body["previous_data"] == {"name": None, "price": None}
    assert body["expires"].endswith("+00:00") and "." not in body["expires"]
    assert body["retries"] == 0 and body["meta"] == {}


def test_update_increments_revision_once_per_transaction(produced):
    product = Product.objects.create(name="a")
    with transaction.atomic():
        product.name = "b"
        product.save()
        product.name = "c"
        product.save()
        assert len(produced) == 1
    assert len(produced) == 2
    data = produced[1].instance_data
    assert data["cqrs_revision"] == 1 and data["name"] == "c"
    assert produced[1].previous_data == {"name": "a"}
    product.refresh_from_db()
    assert product.cqrs_revision == 1


def test_rollback_publishes_nothing(produced):
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.create(name="gone")
        raise RuntimeError
    assert produced == []


@pytest.mark.parametrize("mode", ["outbox", "each"])
def test_a_save_after_a_rolled_back_savepoint_is_published(mode, produced, settings):
    """django-cqrs asks callers to reset_cqrs_saves_count() after a rollback, or the next save
    of the instance is never published; here the discarded commit hook is noticed."""
    settings.MESSAGING["CQRS"]["master"] = {"CQRS_PUBLISH_CONFIRMS": mode}
    product = Product.objects.create(name="v0")
    produced.clear()
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            product.name = "v1"
            product.save()
            raise RuntimeError
        product.name = "v2"
        product.save()
    assert [(p.instance_data["name"], p.instance_data["cqrs_revision"]) for p in produced] == [
        ("v2", 1)
    ]
    product.refresh_from_db()
    assert product.cqrs_revision == 1
    # The same after the whole transaction rolled back.
    produced.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        product.name = "v3"
        product.save()
        raise RuntimeError
    with transaction.atomic():
        product.name = "v4"
        product.save()
    assert [(p.instance_data["name"], p.instance_data["cqrs_revision"]) for p in produced] == [
        ("v4", 2)
    ]


def test_update_fields_is_silent_unless_asked(produced, settings):
    product = Product.objects.create(name="a")
    product.name = "b"
    product.save(update_fields=["name"])
    assert len(produced) == 1
    product.save(update_fields=["name"], update_cqrs_fields=True)
    assert len(produced) == 2 and produced[1].instance_data["cqrs_revision"] == 1
    settings.MESSAGING["CQRS"]["master"] = {"CQRS_AUTO_UPDATE_FIELDS": True}
    product.save(update_fields=["name"])
    assert len(produced) == 3 and produced[2].instance_data["cqrs_revision"] == 2


def test_suppress_silences_master_signals(produced):
    with suppress():
        product = Product.objects.create(name="quiet")
        product.delete()
    with suppress(["other"]):
        Product.objects.create(name="loud")
    with suppress(["product"]):
        Product.objects.create(name="quiet too")
    assert [p.instance_data["name"] for p in produced] == ["loud"]


def test_cqrs_produce_false_and_is_sync_instance(produced, monkeypatch):
    Filtered.objects.create(name="ab")
    Filtered.objects.create(name="abc")
    assert [p.instance_data["name"] for p in produced] == ["abc"]
    monkeypatch.setattr(Product, "CQRS_PRODUCE", False)
    Product.objects.create(name="x")
    assert len(produced) == 1


def test_delete_payload(produced):
    product = Product.objects.create(name="a")
    pk = product.pk
    product.delete()
    payload = produced[-1]
    assert payload.signal_type is SignalType.DELETE
    assert payload.instance_data["id"] == pk
    assert payload.instance_data["cqrs_revision"] == 1
    assert payload.pk == pk


def test_custom_delete_data_travels_with_the_delete(produced, monkeypatch):
    monkeypatch.setattr(
        Product, "get_custom_cqrs_delete_data", lambda self: {"reason": f"sold {self.name}"}
    )
    product = Product.objects.create(name="lamp")
    product.delete()
    assert produced[-1].instance_data["custom"] == {"reason": "sold lamp"}


def test_relate_cqrs_serialization_saves_the_serializer_its_queries(
    produced, django_assert_num_queries
):
    author = Author.objects.create(name="a", publisher=Publisher.objects.create(name="p"))
    with django_assert_num_queries(1):  # the publisher comes with the author (select_related)
        data = author.to_cqrs_dict()
    assert data["publisher"]["name"] == "p"


def test_bulk_signals_reach_receivers(produced):
    received = []

    def receiver(sender, instances, using, **kwargs):
        received.append((sender, [i.name for i in instances], using))

    post_bulk_create.connect(receiver, sender=Product)
    post_update.connect(receiver, sender=Product)
    try:
        Product.cqrs.bulk_create([Product(name="x"), Product(name="y")])
        Product.cqrs.bulk_update(Product.objects.filter(name="x"), name="z")
    finally:
        post_bulk_create.disconnect(receiver, sender=Product)
        post_update.disconnect(receiver, sender=Product)
    assert [(sender, names) for sender, names, _ in received] == [
        (Product, ["x", "y"]),
        (Product, ["z"]),
    ]


def test_tracking_all_fields_tracks_every_concrete_field(monkeypatch):
    """As django-cqrs: the revision pair and the primary key are tracked too."""
    monkeypatch.setattr(UuidItem, "CQRS_TRACKED_FIELDS", "__all__")
    tracker = CQRSTracker(UuidItem)
    try:
        names = [f.name for f in tracker.fields]
        item = UuidItem.objects.create(name="before")
        item = UuidItem.objects.get(pk=item.pk)
        item.name = "after"
        changed = tracker.changed(item)
    finally:
        signals.post_init.disconnect(tracker._on_init, sender=UuidItem)
    assert sorted(names) == ["cqrs_revision", "cqrs_updated", "id", "name"]
    assert changed == {"name": "before"}


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"CQRS_ID": None}, "CQRS_ID must be set"),
        ({"CQRS_SERIALIZER": "x.Serializer", "CQRS_FIELDS": ["id"]}, "cannot be used together"),
        ({"CQRS_FIELDS": "name"}, "must be '__all__' or a list"),
        ({"CQRS_FIELDS": ["id", "id"]}, "duplicate"),
        ({"CQRS_FIELDS": ["id", "nope"]}, "unknown fields"),
        ({"CQRS_FIELDS": ["name"]}, "must include the primary key"),
    ],
)
def test_master_registration_reports_bad_declarations(attrs, message):
    declared = type("Declared", (), {**vars_of(Product), **attrs})
    with pytest.raises(ValueError, match=message):
        MasterMeta.register(declared)


def vars_of(model):
    """The class attributes MasterMeta.register reads, without defining another model."""
    return {
        "CQRS_ID": model.CQRS_ID,
        "CQRS_FIELDS": model.CQRS_FIELDS,
        "CQRS_SERIALIZER": model.CQRS_SERIALIZER,
        "CQRS_TRACKED_FIELDS": None,
        "_meta": model._meta,
    }


def test_cqrs_fields_and_uuid_pk(produced):
    Chosen.objects.create(name="n", secret="s")
    assert set(produced[0].instance_data) == {"id", "name", "cqrs_revision", "cqrs_updated"}
    item = UuidItem.objects.create(name="u")
    assert produced[1].to_dict()["instance_pk"] == str(item.pk)
    assert produced[1].instance_data["id"] == str(item.pk)


def test_serializer_models_are_serialized_after_commit(produced):
    publisher = Publisher.objects.create(name="pub")
    with transaction.atomic():
        author = Author.objects.create(name="auth")
        author.publisher = publisher
        author.save()
    assert len(produced) == 1
    assert produced[0].instance_data["publisher"] == {"id": publisher.pk, "name": "pub"}


def test_bulk_create_and_bulk_update_publish_per_row(produced):
    objs = Product.cqrs.bulk_create([Product(name=f"b{i}") for i in range(3)])
    assert len(produced) == 3 and all(p.pk for p in produced)
    produced.clear()
    count = Product.cqrs.bulk_update(
        Product.objects.filter(pk__in=[o.pk for o in objs[:2]]), name="z"
    )
    assert count == 2
    assert sorted(
        (p.instance_data["name"], p.instance_data["cqrs_revision"]) for p in produced
    ) == [
        ("z", 1),
        ("z", 1),
    ]
    # Every tracked field as loaded, as django-cqrs sends it after a bulk update.
    assert produced[0].previous_data == {"name": "b0", "price": "0.000000"}


def test_cqrs_sync_to_a_queue(produced):
    product = Product.objects.create(name="a")
    produced.clear()
    assert product.cqrs_sync(queue="audit") is True
    assert produced[0].signal_type is SignalType.SYNC and produced[0].queue == "audit"
    assert Product(name="unsaved").cqrs_sync() is False


def test_raw_master_mixin_with_proxy(produced):
    assert MasterRegistry.models["raw_base"] is RawBase
    RawProxy.objects.create(name="via proxy")
    assert produced[0].cqrs_id == "raw_base"


def test_a_proxy_deletes_as_its_master(produced):
    row = RawProxy.objects.create(name="gone")
    pk = row.pk
    produced.clear()
    row.delete()
    assert [(p.signal_type, p.cqrs_id, p.pk) for p in produced] == [
        (SignalType.DELETE, "raw_base", pk)
    ]


def test_models_that_are_not_masters_keep_fast_delete():
    """Handlers connected for every sender would make Django fetch every row of every model
    before deleting it (``Collector.can_fast_delete`` is false when post_delete has listeners)."""
    collector = Collector(using="default", origin=None)
    assert collector.can_fast_delete(ProductRef.objects.all())  # a replica: no handlers
    assert not collector.can_fast_delete(Product.objects.all())
    assert not collector.can_fast_delete(RawProxy.objects.all())


def test_meta_and_correlation_functions(produced, settings):
    settings.MESSAGING["CQRS"]["master"] = {
        "meta_function": lambda obj, **kw: {"kind": kw["signal_type"].value, "pk": obj.pk},
        "correlation_function": lambda *args: "corr-1",
    }
    product = Product.objects.create(name="m")
    assert produced[0].meta == {"kind": "SAVE", "pk": product.pk}
    assert produced[0].correlation_id == "corr-1"


def test_saves_count(produced):
    product = Product.objects.create(name="a")
    with transaction.atomic():
        product.save()
        assert product.cqrs_saves_count == 1 and product.is_initial_cqrs_save
        product.save()
        assert not product.is_initial_cqrs_save
    assert product.cqrs_saves_count == 0
    product.reset_cqrs_saves_count()
    assert product.is_initial_cqrs_save
