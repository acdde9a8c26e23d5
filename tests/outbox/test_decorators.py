"""``@publish([Config(...)])``: the seed's body shapes and destinations, same transaction,
subclasses and proxies, suppression, and the cost of the hook."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DataError, connection, models, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext

from django_messaging.core import suppress
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.correlation import correlation_id
from django_messaging.outbox.decorators import CONFIGS_ATTRIBUTE, Config, publish
from django_messaging.outbox.models import Published
from tests.helpers import skip_with_server_side_binding
from tests.project.outbox_app.models import (
    FIELDS,
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
    statements = [q["sql"].upper() for q in ctx.captured_queries]
    plain = [q["sql"].upper() for q in plain_ctx.captured_queries]
    assert sum(s.count("INSERT INTO") for s in statements) == (
        sum(s.count("INSERT INTO") for s in plain) + 1
    )
    assert not any(s.startswith(("SELECT", "SAVEPOINT")) for s in statements)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_atomic", [False, True], ids=["autocommit", "atomic"])
def test_a_create_is_one_statement_on_postgresql(in_atomic: bool) -> None:
    """In autocommit the model's INSERT carries the outbox rows: no BEGIN/COMMIT of its own.
    Inside a transaction the saves are the plain INSERTs, and the rows of the whole block are
    written just before the COMMIT, in the same statement string."""
    if in_atomic:
        skip_with_server_side_binding()
    from tests.project.outbox_app.models import Unpublished

    def block() -> contextlib.AbstractContextManager:
        return transaction.atomic() if in_atomic else contextlib.nullcontext()

    with CaptureQueriesContext(connection) as plain_ctx, block():
        Unpublished.objects.create(field_one="a", field_two="b")
    with CaptureQueriesContext(connection) as ctx, block():
        plain = PlainModel.objects.create(field_one="one", field_two="two")
        fields = FieldsModel.objects.create(field_one="f1", field_two="f2")
        versioned = VersionedModel.objects.create(field_one="v1", field_two="v2")
    # As many statements as plain saves: one each (plus BEGIN, the rows and COMMIT in a block;
    # the rows sent with the COMMIT, which Django logs as well).
    assert len(plain_ctx.captured_queries) == (3 if in_atomic else 1)
    assert len(ctx.captured_queries) == (6 if in_atomic else 3)
    if in_atomic:
        rows_sql = ctx.captured_queries[-2]["sql"]
        assert "messaging_outbox_published" in rows_sql and rows_sql.endswith("; COMMIT")
    assert {r.destination: r.body for r in rows()} == {
        PLAIN: {"id": plain.id, "field_one": "one", "field_two": "two"},
        FIELDS: {"id": fields.id, "field_one": "f1"},
        f"{VERSIONED}.v1": {"id": versioned.id, "field_one": "v1", "field_two": "v2"},
    }
    [version] = Published.objects.filter(version="v1")
    assert version.destination == f"{VERSIONED}.v1"


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_key_from_a_default_is_in_the_body_of_the_one_statement() -> None:
    """A primary key the model generates (not the database) is known before the INSERT."""

    @publish([Config(destination=PLAIN)])
    class UuidKeyed(models.Model):
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        name = models.CharField(max_length=20)

        class Meta:
            app_label = "test_outbox"

    with connection.schema_editor() as editor:
        editor.create_model(UuidKeyed)
    try:
        with CaptureQueriesContext(connection) as ctx:
            obj = UuidKeyed.objects.create(name="u")
        assert len(ctx.captured_queries) == 1
        [row] = rows()
        assert row.body == {"id": str(obj.id), "name": "u"}
        assert UuidKeyed.objects.get().pk == obj.pk
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(UuidKeyed)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.django_db(transaction=True)
def test_a_failing_outbox_row_fails_the_save_in_autocommit() -> None:
    """One statement writes both rows: when the outbox row cannot be written, neither is."""
    configs = getattr(PlainModel, CONFIGS_ATTRIBUTE)
    kept = configs[0]
    configs[0] = Config(destination="/topic/" + "x" * 300)  # longer than the column
    try:
        with pytest.raises(DataError):
            PlainModel.objects.create(field_one="a", field_two="b")
    finally:
        configs[0] = kept
    assert not PlainModel.objects.exists()
    assert not Published.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_post_save_receiver_still_undoes_the_save_in_autocommit() -> None:
    """With a ``post_save`` receiver the save keeps its transaction: a receiver that raises
    takes the model row and the outbox row back, as it always did."""

    def fail(**kwargs: object) -> None:
        raise RuntimeError("receiver failed")

    signals.post_save.connect(fail, sender=PlainModel, dispatch_uid="outbox-test-fail")
    try:
        with pytest.raises(RuntimeError, match="receiver failed"):
            PlainModel.objects.create(field_one="a", field_two="b")
    finally:
        signals.post_save.disconnect(sender=PlainModel, dispatch_uid="outbox-test-fail")
    assert not PlainModel.objects.exists()
    assert not Published.objects.exists()
    PlainModel.objects.create(field_one="c", field_two="d")
    assert Published.objects.count() == 1


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
    every column must still hold what the model's own defaults give (and the same headers)."""
    with correlation_id("one-id"):
        PlainModel.objects.create(field_one="a", field_two="b")
        [row] = rows()
        reference = Published.objects.create(destination="/topic/x", body={})
    assert row.headers == {"dop-correlation-id": "one-id"}
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


# --- inside transaction.atomic(): the rows are written just before the commit ----------------


@pytest.mark.django_db(transaction=True)
def test_inside_atomic_the_rows_are_written_just_before_the_commit() -> None:
    """One INSERT for the rows of every save of the block, in save order, at its commit: the
    transaction's own reads do not see them before (as documented)."""
    with correlation_id("one-id"), transaction.atomic():
        plain = PlainModel.objects.create(field_one="one", field_two="two")
        multi = MultiModel.objects.create(field_one="m1", field_two="m2")
        plain.field_one = "changed"
        plain.save()
        assert not Published.objects.exists()
    assert [(r.destination, r.body) for r in Published.objects.order_by("added")] == [
        (PLAIN, {"id": plain.id, "field_one": "one", "field_two": "two"}),
        (MULTI_1, {"id": multi.id, "one": "m1"}),
        (MULTI_2, {"id": multi.id, "two": "m2"}),
        (PLAIN, {"id": plain.id, "field_one": "changed", "field_two": "two"}),
    ]
    with correlation_id("one-id"):
        reference = Published.objects.create(destination="/topic/x", body={})
    for row in Published.objects.exclude(pk=reference.pk):
        for name in ("status", "retry", "headers", "last_error", "claimed_by", "sent_at"):
            assert getattr(row, name) == getattr(reference, name), name
        assert row.available_at == row.added
        assert row.expires_at - row.added == dt.timedelta(days=1)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_drops_exactly_its_rows() -> None:
    with transaction.atomic():
        PlainModel.objects.create(field_one="kept 1", field_two="-")
        with contextlib.suppress(RuntimeError), transaction.atomic():
            PlainModel.objects.create(field_one="dropped 1", field_two="-")
            with transaction.atomic():
                PlainModel.objects.create(field_one="dropped 2", field_two="-")
            raise RuntimeError("roll back this savepoint")
        with transaction.atomic():
            PlainModel.objects.create(field_one="kept 2", field_two="-")
            with contextlib.suppress(RuntimeError), transaction.atomic():
                PlainModel.objects.create(field_one="dropped 3", field_two="-")
                raise RuntimeError("and this one")
        PlainModel.objects.create(field_one="kept 3", field_two="-")
    with pytest.raises(RuntimeError), transaction.atomic():
        PlainModel.objects.create(field_one="dropped 4", field_two="-")
        raise RuntimeError("roll back the transaction")
    kept = ["kept 1", "kept 2", "kept 3"]
    assert [r.body["field_one"] for r in Published.objects.order_by("added")] == kept
    assert sorted(PlainModel.objects.values_list("field_one", flat=True)) == kept


@pytest.mark.skipif("connection.vendor == 'sqlite'")  # SQLite does not check the length
@pytest.mark.django_db(transaction=True)
def test_rows_that_cannot_be_written_fail_the_commit() -> None:
    """The rows are written inside the transaction, before COMMIT: when they cannot be, the
    block raises the database error and nothing of the transaction is committed."""
    configs = getattr(PlainModel, CONFIGS_ATTRIBUTE)
    kept = configs[0]
    configs[0] = Config(destination="/topic/" + "x" * 300)  # longer than the column
    try:
        with pytest.raises(DataError), transaction.atomic():
            PlainModel.objects.create(field_one="a", field_two="b")
            FieldsModel.objects.create(field_one="c", field_two="d")
    finally:
        configs[0] = kept
    assert not PlainModel.objects.exists()
    assert not FieldsModel.objects.exists()
    assert not Published.objects.exists()
    with transaction.atomic():  # the connection is usable again
        PlainModel.objects.create(field_one="e", field_two="f")
    assert Published.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_failing_body_inside_atomic_keeps_the_transaction_from_committing() -> None:
    """As in autocommit: a save whose outbox row cannot be built does not commit the model row
    without it, even when the caller catches the error."""

    def fail() -> dict:
        raise ValueError("no body")

    instance = SerializerModel(field_one="a", field_two="b")
    instance.my_serializer = fail  # type: ignore[method-assign]
    with transaction.atomic():
        with pytest.raises(ValueError, match="no body"):
            instance.save()
        assert transaction.get_rollback()
    assert not SerializerModel.objects.exists()
    assert not Published.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_manual_transaction_writes_its_rows_once() -> None:
    """With autocommit off, ``commit()`` writes the rows; a later commit does not again."""
    transaction.set_autocommit(False)
    try:
        with transaction.atomic():
            PlainModel.objects.create(field_one="a", field_two="b")
        transaction.commit()
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert Published.objects.count() == 1
