"""``@publish([Config(...)])``: the seed's body shapes and destinations, same transaction,
subclasses and proxies, suppression, and the cost of the hook."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction
from django.test.utils import CaptureQueriesContext

from django_messaging.core import suppress
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.decorators import Config, publish
from django_messaging.outbox.models import Published
from tests.project.outbox_app.models import (
    MULTI_1,
    MULTI_2,
    PLAIN,
    SERIALIZER,
    VERSIONED,
    FieldsModel,
    MultiModel,
    PlainChild,
    PlainModel,
    PlainProxy,
    SerializerModel,
    VersionedModel,
)

pytestmark = pytest.mark.django_db


def rows() -> list[Published]:
    return list(Published.objects.order_by("added", "destination"))


def test_only_destination_body_has_id_and_every_field() -> None:
    obj = PlainModel.objects.create(field_one="Field One", field_two="Field Two")
    [row] = rows()
    assert row.destination == PLAIN
    assert row.body == {"id": obj.id, "field_one": "Field One", "field_two": "Field Two"}
    assert row.status == StatusChoice.SCHEDULE
    assert row.version is None


def test_version_is_appended_to_the_destination() -> None:
    obj = VersionedModel.objects.create(field_one="One", field_two="Two")
    [row] = rows()
    assert row.destination == f"{VERSIONED}.v1"
    assert row.version == "v1"
    assert row.body == {"id": obj.id, "field_one": "One", "field_two": "Two"}


def test_fields_subset() -> None:
    obj = FieldsModel.objects.create(field_one="Field One", field_two="Field Two")
    [row] = rows()
    assert row.body == {"id": obj.id, "field_one": "Field One"}


def test_named_serializer_method() -> None:
    obj = SerializerModel.objects.create(field_one="Field One", field_two="Field Two")
    [row] = rows()
    assert row.destination == SERIALIZER
    assert row.body == {"id": obj.id, "one": "Field One", "two": "Field Two"}


def test_several_destinations_and_serializers() -> None:
    obj = MultiModel.objects.create(field_one="Field One", field_two="Field Two")
    by_destination = {r.destination: r.body for r in rows()}
    assert by_destination == {
        MULTI_1: {"id": obj.id, "one": "Field One"},
        MULTI_2: {"id": obj.id, "two": "Field Two"},
    }


def test_every_save_writes_a_row() -> None:
    obj = PlainModel.objects.create(field_one="a", field_two="b")
    obj.field_one = "c"
    obj.save()
    assert [r.body["field_one"] for r in rows()] == ["a", "c"]


def test_proxy_and_subclass_publish_without_recursion() -> None:
    """django-outbox-pattern 0.9.0 (research E9): a proxy or subclass of a decorated model
    raised RecursionError on save because the hook called ``super(self.__class__, self)``."""
    proxy = PlainProxy.objects.create(field_one="p", field_two="q")
    child = PlainChild.objects.create(field_one="c", field_two="d", extra="x")
    bodies = [r.body for r in rows()]
    assert {"id": proxy.id, "field_one": "p", "field_two": "q"} in bodies
    assert any(b["id"] == child.pk and b["field_one"] == "c" for b in bodies)
    assert len(bodies) == 2


def test_outbox_row_is_in_the_same_transaction() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        PlainModel.objects.create(field_one="a", field_two="b")
        assert Published.objects.count() == 1
        raise RuntimeError("rolled back")
    assert PlainModel.objects.count() == 0
    assert Published.objects.count() == 0


def test_silent_under_suppress() -> None:
    with suppress():
        PlainModel.objects.create(field_one="a", field_two="b")
    with suppress([MULTI_1]):
        MultiModel.objects.create(field_one="a", field_two="b")
    assert [r.destination for r in rows()] == [MULTI_2]
    PlainModel.objects.create(field_one="after", field_two="b")
    assert Published.objects.count() == 2


def test_suppress_by_versioned_destination() -> None:
    with suppress(f"{VERSIONED}.v1"):
        VersionedModel.objects.create(field_one="a", field_two="b")
    assert Published.objects.count() == 0


def test_one_extra_insert_and_no_select() -> None:
    PlainModel.objects.create(field_one="warm", field_two="up")
    with CaptureQueriesContext(connection) as plain_ctx:
        from tests.project.outbox_app.models import Unpublished

        Unpublished.objects.create(field_one="a", field_two="b")
    with CaptureQueriesContext(connection) as ctx:
        PlainModel.objects.create(field_one="a", field_two="b")
    statements = [q["sql"].split()[0].upper() for q in ctx.captured_queries]
    plain = [q["sql"].split()[0].upper() for q in plain_ctx.captured_queries]
    assert statements.count("INSERT") == plain.count("INSERT") + 1
    assert "SELECT" not in statements


def test_unknown_serializer_name_is_an_error_not_a_silent_fallback() -> None:
    """django-outbox-pattern 0.9.0: a misspelt ``serializer`` silently fell back to the
    field serialisation (``hasattr`` check)."""
    with pytest.raises(ImproperlyConfigured, match="not a method"):

        @publish([Config(destination="/topic/x", serializer="nope")])
        class Broken(models.Model):
            class Meta:
                app_label = "test_outbox"


def test_published_create_appends_version() -> None:
    row = Published.objects.create(destination="/topic/direct", body={"a": 1}, version="v2")
    row.refresh_from_db()
    assert row.destination == "/topic/direct.v2"
    assert row.body == {"a": 1}


def test_decorator_row_has_the_model_defaults() -> None:
    """The hook writes its row with one prepared INSERT, not through ``Published.save()``:
    every column must still hold what the model's own defaults give."""
    PlainModel.objects.create(field_one="a", field_two="b")
    [row] = rows()
    reference = Published.objects.create(destination="/topic/x", body={})
    for name in ("status", "retry", "headers", "claimed_by", "claimed_until", "sent_at"):
        assert getattr(row, name) == getattr(reference, name), name
    assert row.last_error == reference.last_error == ""
    assert row.available_at == row.added
    assert row.expires_at - row.added == dt.timedelta(days=1)
    assert isinstance(row.id, uuid.UUID) and row.id != reference.id


def test_several_configs_keep_their_order() -> None:
    MultiModel.objects.create(field_one="a", field_two="b")
    first, second = Published.objects.order_by("added", "id")
    assert first.added < second.added
    assert [first.destination, second.destination] == [
        MULTI_1,
        MULTI_2,
    ]
