"""Replica side: revision rules, tombstones, mapping and field round trips (no broker needed)."""

from __future__ import annotations

import copy
import datetime as dt
import threading
import uuid
from decimal import Decimal

import pytest
from django.db import (
    connection,  # noqa: F401  (read by a skipif condition)
    connections,
    transaction,
)
from django.utils import timezone

from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.controller.consumer import consume, consume_batch
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PayloadError
from django_messaging.cqrs.metas import ReplicaMeta
from django_messaging.cqrs.models import Tombstone
from django_messaging.cqrs.testing import CqrsBroker
from django_messaging.testing import committed
from tests.project.cqrs_app.models import (
    AuditTrail,
    AuthorRef,
    ChosenRef,
    DirectOnlyRef,
    Product,
    ProductRef,
    UuidItem,
    UuidItemRef,
)

pytestmark = pytest.mark.django_db(transaction=True)
T0 = timezone.now() - dt.timedelta(hours=1)


def save(pk, revision, name="n", at=None, signal=SignalType.SAVE, cqrs_id="product", **extra):
    data = {
        "id": pk,
        "name": name,
        "price": "1.5",
        "cqrs_revision": revision,
        "cqrs_updated": str(at or T0 + dt.timedelta(seconds=revision)),
        **extra,
    }
    return TransportPayload(signal, cqrs_id, data, pk)


def delete(pk, revision, at):
    data = {"id": pk, "cqrs_revision": revision, "cqrs_updated": str(at)}
    return TransportPayload(SignalType.DELETE, "product", data, pk)


@pytest.fixture(params=["single", "batch"])
def apply(request):
    """Every rule is checked through the one-by-one path and through the bulk batch path."""

    def run(*payloads):
        if request.param == "single":
            for payload in payloads:
                consume(payload)
        else:
            errors = consume_batch(list(payloads))
            assert errors == [None] * len(payloads)

    return run


def test_newer_revision_wins_stale_and_duplicates_dropped(apply):
    apply(save(1, 0, "a"), save(1, 2, "c"), save(1, 1, "b"), save(1, 2, "dup"))
    row = ProductRef.objects.get(pk=1)
    assert (row.name, row.cqrs_revision) == ("c", 2)


def test_sync_applies_even_a_lower_revision(apply):
    apply(save(2, 5, "five"), save(2, 3, "synced", signal=SignalType.SYNC))
    assert ProductRef.objects.get(pk=2).name == "synced"


def test_late_save_never_resurrects_a_deleted_row(apply):
    """django-cqrs research §4.2 #2: a delayed SAVE after a DELETE re-created the row."""
    apply(save(3, 0, "a"), delete(3, 1, T0 + dt.timedelta(seconds=10)), save(3, 0, "late"))
    assert not ProductRef.objects.filter(pk=3).exists()
    assert Tombstone.objects.filter(cqrs_id="product", instance_pk="3").exists()
    apply(save(3, 4, "stale retry", at=T0 + dt.timedelta(seconds=5)))
    assert not ProductRef.objects.filter(pk=3).exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers")
def test_a_delete_and_a_late_save_of_a_missing_row_side_by_side(apply):
    """Two workers (``-w 2``): one applies the DELETE of a row this replica does not have yet,
    the other the older SAVE that created it. No row exists for a row lock to order them."""
    held, release, errors = threading.Event(), threading.Event(), []

    def in_thread(work):
        def run():
            try:
                work()
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def deleting():
        with transaction.atomic():  # the worker's batch transaction, held open
            apply(delete(7, 1, T0 + dt.timedelta(seconds=10)))
            held.set()
            release.wait(10)

    deleter = in_thread(deleting)
    assert held.wait(10)
    saver = in_thread(lambda: apply(save(7, 0, "late")))
    saver.join(1.0)  # it waits for the delete to commit
    release.set()
    deleter.join(10)
    saver.join(10)
    assert not errors
    assert not ProductRef.objects.filter(pk=7).exists()
    assert Tombstone.objects.filter(cqrs_id="product", instance_pk="7").exists()


def test_a_row_recreated_after_the_delete_is_applied(apply):
    apply(save(4, 0, "a"), delete(4, 1, T0 + dt.timedelta(seconds=10)))
    apply(save(4, 0, "reborn", at=T0 + dt.timedelta(seconds=20)))
    assert ProductRef.objects.get(pk=4).name == "reborn"
    assert not Tombstone.objects.filter(cqrs_id="product", instance_pk="4").exists()


def test_delete_older_than_the_row_keeps_it(apply):
    apply(save(5, 3, "new", at=T0 + dt.timedelta(seconds=30)), delete(5, 1, T0))
    assert ProductRef.objects.filter(pk=5).exists()


def test_a_replica_that_is_not_a_model_gets_every_message():
    AuditTrail.received = []
    meta = {"origin": "test"}
    payloads = [
        TransportPayload(SignalType.SAVE, "audit_trail", {"id": 1}, 1, meta=meta),
        TransportPayload(SignalType.SYNC, "audit_trail", {"id": 2}, 2, meta=meta),
        TransportPayload(SignalType.DELETE, "audit_trail", {"id": 1}, 1, meta=meta),
    ]
    consume(payloads[0])
    assert consume_batch(payloads[1:]) == [None, None]
    assert AuditTrail.received == [("SAVE", 1, meta), ("SYNC", 2, meta), ("DELETE", 1, meta)]


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"CQRS_ID": None}, "CQRS_ID must be set"),
        ({"CQRS_MAPPING": ["id"]}, "must be a dict"),
        ({"CQRS_MAPPING": {"id": "id", "name": "id"}}, "two master fields to one field"),
        ({"CQRS_MAPPING": {"id": "id", "x": "nope"}}, "unknown fields"),
        ({"CQRS_MAPPING": {"name": "name"}}, "must map the primary key"),
    ],
)
def test_replica_registration_reports_bad_declarations(attrs, message):
    declared = type("Declared", (), {"CQRS_ID": "product", "_meta": ProductRef._meta, **attrs})
    with pytest.raises(ValueError, match=message):
        ReplicaMeta.register(declared)


def test_payload_errors_are_reported_not_applied():
    errors = consume_batch([save(6, 0, "ok"), TransportPayload("SAVE", "product", {"id": 7}, 7)])
    assert errors[0] is None and isinstance(errors[1], PayloadError)
    assert ProductRef.objects.filter(pk=6).exists()
    with pytest.raises(PayloadError):
        consume(TransportPayload("SAVE", "nope", {"id": 1}, 1))


def test_mapping(apply):
    apply(
        TransportPayload(
            "SAVE",
            "chosen",
            {"id": 8, "name": "mapped", "cqrs_revision": 0, "cqrs_updated": str(T0)},
            8,
        )
    )
    assert ChosenRef.objects.get(pk=8).title == "mapped"


def test_custom_serialization_and_meta():
    payload = TransportPayload(
        "SAVE",
        "author",
        {
            "id": 9,
            "name": "writer",
            "publisher": {"id": 1, "name": "pub"},
            "cqrs_revision": 0,
            "cqrs_updated": str(T0),
        },
        9,
        meta={"trace": "t"},
    )
    assert consume_batch([payload]) == [None]
    row = AuthorRef.objects.get(pk=9)
    assert (row.publisher_name, row.meta_seen) == ("pub", {"trace": "t"})


def test_only_direct_syncs_applies_direct_syncs(settings):
    """django-cqrs research §4.2 #1: CQRS_ONLY_DIRECT_SYNCS dropped direct syncs too."""
    own = settings.MESSAGING["CQRS"]["queue"]
    base = {"id": 10, "name": "x", "cqrs_revision": 0, "cqrs_updated": str(T0)}
    consume(TransportPayload("SAVE", "direct_only", base, 10))
    broadcast = {**base, "name": "broadcast", "cqrs_revision": 1}
    consume(TransportPayload("SYNC", "direct_only", broadcast, 10))
    assert DirectOnlyRef.objects.get(pk=10).name == "x"
    direct = {**base, "name": "direct", "cqrs_revision": 2}
    consume(TransportPayload("SYNC", "direct_only", direct, 10, queue=own))
    assert DirectOnlyRef.objects.get(pk=10).name == "direct"


def test_every_field_type_round_trips_through_the_wire():
    """django-cqrs research §4.2 #11: time, duration and binary broke publishing; Decimal lost digits."""
    with CqrsBroker() as broker:
        with committed():
            Product.objects.create(
                name="all",
                price=Decimal("12345678.123456"),
                day=dt.date(2026, 1, 2),
                at=dt.time(23, 59, 58, 999999),
                duration=dt.timedelta(days=-1, seconds=5, microseconds=1),
                blob=bytes(range(256)),
            )
            item = UuidItem.objects.create(name="uuid")
        assert broker.deliver() == 2
    assert len(broker.dead_letters) == 0
    row = ProductRef.objects.get()
    assert row.price == Decimal("12345678.123456")
    assert row.at == dt.time(23, 59, 58, 999999)
    assert row.duration == dt.timedelta(days=-1, seconds=5, microseconds=1)
    assert bytes(row.blob) == bytes(range(256))
    assert row.day == dt.date(2026, 1, 2)
    assert UuidItemRef.objects.get(pk=item.pk).name == "uuid"
    assert isinstance(UuidItemRef.objects.get().pk, uuid.UUID)


def test_query_timeout_is_applied_and_logged(settings, caplog, monkeypatch, pg_binding):
    """CQRS_QUERY_TIMEOUT sets PostgreSQL's statement_timeout (other databases ignore it), with
    server-side binding too (where a SET statement takes no parameter)."""
    settings.MESSAGING = copy.deepcopy(settings.MESSAGING)
    settings.MESSAGING["CQRS"]["replica"] = {
        "CQRS_QUERY_TIMEOUT": 50,
        "CQRS_LOG_TIMED_OUT_QUERIES": True,
    }

    def slow_create(cls, sync, mapped_data, previous_data=None, meta=None):
        from django.db import connection as db

        with db.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1)")

    monkeypatch.setattr(AuthorRef, "cqrs_create", classmethod(slow_create))
    payload = TransportPayload(
        "SAVE", "author", {"id": 1, "name": "x", "cqrs_revision": 0, "cqrs_updated": str(T0)}, 1
    )
    [error] = consume_batch([payload])
    assert error is not None and "canceling statement due to statement timeout" in str(error)
    assert "query timed out after 50 ms" in caplog.text
