"""``KafkaConnectSkipModel`` / ``KafkaConnectSkipQueryset`` on the real database.

Database triggers record every insert, update and delete with the ``kafka_skip`` value a
change-data-capture connector would read (the new row, or the old row for deletes): that is
what a connector filtering on ``kafka_skip`` decides on.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
from django import forms
from django.core.management import call_command

from django_messaging.core.suppression import suppress, unsuppress
from django_messaging.kafka.connect.models import KafkaConnectSkipModel, KafkaConnectSkipQueryset
from tests.kafka.cdc import create_triggers
from tests.project.kafka_app.models import ChangeLog, SkipChild, SkipItem, SkipUser

pytestmark = pytest.mark.django_db

Events = Callable[..., list[tuple[str, int, bool]]]


@pytest.fixture
def events() -> Iterator[Events]:
    """``events(model)``: (op, row id, kafka_skip) of every change of that model's table so far.

    The triggers are created inside the test's transaction and vanish with its rollback.
    """
    create_triggers([SkipItem._meta.db_table, SkipChild._meta.db_table, SkipUser._meta.db_table])

    def read(model: type = SkipItem, since: int = 0) -> list[tuple[str, int, bool]]:
        rows = ChangeLog.objects.filter(table=model._meta.db_table).order_by("id")
        return [(r.op, r.row_id, bool(r.kafka_skip)) for r in rows][since:]

    yield read


def _skip(obj: SkipItem) -> bool:
    return bool(SkipItem.objects.values_list("kafka_skip", flat=True).get(pk=obj.pk))


def test_declared_as_documented() -> None:
    field = SkipItem._meta.get_field("kafka_skip")
    assert field.default is False
    assert field.editable is False
    assert KafkaConnectSkipModel._meta.abstract
    assert isinstance(SkipItem.objects.all(), KafkaConnectSkipQueryset)

    class ItemForm(forms.ModelForm):
        class Meta:
            model = SkipItem
            fields = "__all__"

    assert "kafka_skip" not in ItemForm().fields


def test_migrations_see_a_plain_boolean_field() -> None:
    """The assignment-tracking field class stays out of users' migrations."""
    field = SkipItem._meta.get_field("kafka_skip")
    assert field.deconstruct()[1] == "django.db.models.BooleanField"
    out = io.StringIO()
    call_command("makemigrations", "test_kafka", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()


def test_positional_construction_counts_as_explicit() -> None:
    order = [f.attname for f in SkipItem._meta.concrete_fields]
    assert order == ["id", "kafka_skip", "name", "counter"]
    item = SkipItem(None, True, "positional", 0)
    item.save()
    assert _skip(item) is True
    assert SkipItem(None)._kafka_skip_explicit is False


def test_create_publishes_unless_set_or_suppressed(events: Events) -> None:
    """django-kafka #79: ``kafka_skip`` ignored ``suppress()`` (0.5.13 always wrote False)."""
    a = SkipItem.objects.create(name="a")
    b = SkipItem.objects.create(name="b", kafka_skip=True)
    with suppress():
        c = SkipItem.objects.create(name="c")
        d = SkipItem.objects.create(name="d", kafka_skip=False)
    with suppress(["some-topic"]):
        e = SkipItem.objects.create(name="e")

    assert events() == [
        ("i", a.pk, False),
        ("i", b.pk, True),
        ("i", c.pk, True),
        ("i", d.pk, False),
        ("i", e.pk, False),
    ]
    assert (a.kafka_skip, b.kafka_skip, c.kafka_skip) == (False, True, True)


def test_save_of_a_loaded_instance_resets_the_flag(events: Events) -> None:
    item = SkipItem.objects.create(name="x", kafka_skip=True)
    loaded = SkipItem.objects.get(pk=item.pk)
    assert loaded.kafka_skip is True

    loaded.counter = 1
    loaded.save()

    assert loaded.kafka_skip is False
    assert _skip(item) is False
    assert events()[-1] == ("u", item.pk, False)


def test_explicit_flag_holds_for_one_save_only(events: Events) -> None:
    item = SkipItem.objects.create(name="x")

    item.kafka_skip = True
    item.counter = 1
    item.save()
    item.counter = 2
    item.save()

    assert [e[2] for e in events()] == [False, True, False]


def test_save_with_update_fields_always_writes_the_flag(events: Events) -> None:
    """django-kafka #298: an instance that still believed ``kafka_skip`` was False did not write
    it, so a ``True`` set meanwhile by another process stayed and the change was never published."""
    item = SkipItem.objects.create(name="x")
    stale = SkipItem.objects.get(pk=item.pk)
    SkipItem.objects.filter(pk=item.pk).update(kafka_skip=True)  # another process

    stale.counter = 5
    stale.save(update_fields=["counter"])

    assert _skip(item) is False
    assert events()[-1] == ("u", item.pk, False)


def test_save_of_a_deferred_instance_writes_the_flag(events: Events) -> None:
    item = SkipItem.objects.create(name="x", kafka_skip=True)
    partial = SkipItem.objects.only("name").get(pk=item.pk)

    partial.name = "y"
    partial.save()

    assert _skip(item) is False
    assert SkipItem.objects.get(pk=item.pk).name == "y"


def test_refresh_from_db_rearms_the_reset() -> None:
    item = SkipItem.objects.create(name="x")
    item.kafka_skip = True
    item.refresh_from_db()
    item.save()
    assert _skip(item) is False

    item.kafka_skip = True
    item.refresh_from_db(fields=["name"])  # kafka_skip not reloaded: the assignment stands
    item.save()
    assert _skip(item) is True


def test_update_sets_the_flag_unless_given(events: Events) -> None:
    a = SkipItem.objects.create(name="a", kafka_skip=True)
    b = SkipItem.objects.create(name="b")

    SkipItem.objects.filter(pk=a.pk).update(counter=1)
    assert _skip(a) is False

    SkipItem.objects.filter(pk=b.pk).update(counter=1, kafka_skip=True)
    assert _skip(b) is True

    with suppress():
        SkipItem.objects.filter(pk=a.pk).update(counter=2)
        with unsuppress():
            SkipItem.objects.filter(pk=b.pk).update(counter=2)
    assert (_skip(a), _skip(b)) == (True, False)


def test_instance_delete_writes_the_flag_first(events: Events) -> None:
    """django-kafka #19: the delete of a row last written with ``kafka_skip=True`` was filtered
    by the connector, so the other side never heard of it."""
    item = SkipItem.objects.create(name="x", kafka_skip=True)
    pk = item.pk

    item.delete()

    assert events()[-2:] == [("u", pk, False), ("d", pk, False)]
    assert not SkipItem.objects.filter(pk=pk).exists()


def test_delete_under_suppression_is_skipped(events: Events) -> None:
    a = SkipItem.objects.create(name="a")
    b = SkipItem.objects.create(name="b", kafka_skip=True)
    a_pk = a.pk

    with suppress():
        a.delete()
        SkipItem.objects.filter(pk=b.pk).delete()

    # b already had kafka_skip=True: no extra update event for it
    assert events()[2:] == [("u", a_pk, True), ("d", a_pk, True), ("d", b.pk, True)]


def test_queryset_delete_flags_cascaded_rows(events: Events) -> None:
    item = SkipItem.objects.create(name="x", kafka_skip=True)
    first = SkipChild.objects.create(item=item, label="1", kafka_skip=True)
    second = SkipChild.objects.create(item=item, label="2")
    other = SkipItem.objects.create(name="other", kafka_skip=True)

    deleted, per_model = SkipItem.objects.filter(name="x").delete()

    assert deleted == 3
    assert per_model == {"test_kafka.SkipItem": 1, "test_kafka.SkipChild": 2}
    child_deletes = [e for e in events(SkipChild) if e[0] == "d"]
    assert sorted(child_deletes) == [("d", first.pk, False), ("d", second.pk, False)]
    assert [e for e in events(SkipItem) if e[0] == "d"] == [("d", item.pk, False)]
    assert _skip(other) is True  # untouched


def test_fast_delete_path_is_flagged_too(events: Events) -> None:
    a = SkipChild.objects.create(item=SkipItem.objects.create(name="p"), kafka_skip=True)
    b = SkipChild.objects.create(item=a.item, kafka_skip=True)

    SkipChild.objects.filter(pk__in=[a.pk, b.pk]).delete()

    assert sorted(e for e in events(SkipChild) if e[0] == "d") == [
        ("d", a.pk, False),
        ("d", b.pk, False),
    ]


def test_delete_rules_of_querysets_are_kept() -> None:
    SkipItem.objects.create(name="x")
    with pytest.raises(TypeError):
        SkipItem.objects.all()[:1].delete()
    with pytest.raises(TypeError):
        SkipItem.objects.values("name").delete()
    item = SkipItem(name="unsaved")
    with pytest.raises(ValueError, match="can't be deleted"):
        item.delete()


def test_bulk_create_follows_suppression(events: Events) -> None:
    """django-kafka 1.1.1 (#230) made ``bulk_create`` honour ``suppress()``; 0.5.13 did not."""
    plain = SkipItem.objects.bulk_create([SkipItem(name="a"), SkipItem(name="b", kafka_skip=True)])
    with suppress():
        quiet = SkipItem.objects.bulk_create(
            [SkipItem(name="c"), SkipItem(name="d", kafka_skip=False)]
        )

    values = dict(SkipItem.objects.values_list("name", "kafka_skip"))
    assert values == {"a": False, "b": True, "c": True, "d": False}
    assert [o.kafka_skip for o in plain + quiet] == [False, True, True, False]
    assert sorted(e[2] for e in events()) == [False, False, True, True]


def test_bulk_create_upsert_writes_the_flag() -> None:
    SkipItem.objects.create(name="a", kafka_skip=True)

    SkipItem.objects.bulk_create(
        [SkipItem(name="a", counter=7)],
        update_conflicts=True,
        unique_fields=["name"],
        update_fields=["counter"],
    )

    assert SkipItem.objects.values_list("counter", "kafka_skip").get(name="a") == (7, False)


def test_bulk_update_writes_the_flag(events: Events) -> None:
    a = SkipItem.objects.create(name="a", kafka_skip=True)
    b = SkipItem.objects.create(name="b")
    items = list(SkipItem.objects.order_by("name"))
    items[0].counter = 1
    items[1].counter = 1
    items[1].kafka_skip = True

    SkipItem.objects.bulk_update(items, ["counter"])

    assert (_skip(a), _skip(b)) == (False, True)
    with suppress():
        SkipItem.objects.bulk_update(list(SkipItem.objects.order_by("name")), ["counter"])
    assert (_skip(a), _skip(b)) == (True, True)


def test_get_or_create_and_update_or_create(events: Events) -> None:
    item, created = SkipItem.objects.get_or_create(name="x", defaults={"kafka_skip": True})
    assert created and _skip(item) is True

    item, created = SkipItem.objects.update_or_create(name="x", defaults={"counter": 3})
    assert not created and _skip(item) is False

    item, _ = SkipItem.objects.update_or_create(
        name="x", defaults={"counter": 4, "kafka_skip": True}
    )
    assert _skip(item) is True


def test_documented_custom_user_manager(events: Events) -> None:
    user = SkipUser.objects.create_user("ann@example.com", password="pw")
    assert user.check_password("pw")
    assert user.kafka_skip is False

    with suppress():
        SkipUser.objects.filter(pk=user.pk).update(email="ann@example.org")
    assert SkipUser.objects.get(pk=user.pk).kafka_skip is True

    SkipUser.objects.filter(pk=user.pk).update(email="ann@example.net", kafka_skip=True)
    SkipUser.objects.filter(pk=user.pk).update(kafka_skip=False)
    assert events(SkipUser)[-1] == ("u", user.pk, False)
    assert SkipUser.objects.get_by_natural_key("ann@example.net").pk == user.pk
