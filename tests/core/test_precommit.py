"""core.precommit: rows of a transaction written just before its commit, on the real database."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.utils import timezone

from django_messaging.core import precommit
from django_messaging.core.models import StatusSample

pytestmark = pytest.mark.django_db(transaction=True)


class Rows(precommit.BeforeCommit):
    """Writes one StatusSample per hook; records each write call."""

    __slots__ = ("name", "ran")
    calls: list[tuple[str, list[str], bool]] = []

    def __init__(self, name: str) -> None:
        self.name = name
        self.ran = False

    def __call__(self) -> None:
        self.ran = True

    @classmethod
    def write(cls, connection: Any, hooks: list[Any], *, final: bool) -> None:
        cls.calls.append((cls.__name__, [h.name for h in hooks], final))
        now = timezone.now()
        StatusSample.objects.bulk_create(
            [StatusSample(taken_at=now, package=cls.__name__, name=h.name, value=0) for h in hooks]
        )


class OtherRows(Rows):
    __slots__ = ()
    calls: list[tuple[str, list[str], bool]] = []


class Failing(precommit.BeforeCommit):
    __slots__ = ()

    @classmethod
    def write(cls, connection: Any, hooks: list[Any], *, final: bool) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_for_precommit")


class Broken(precommit.BeforeCommit):
    __slots__ = ()

    @classmethod
    def write(cls, connection: Any, hooks: list[Any], *, final: bool) -> None:
        raise RuntimeError("cannot build the rows")


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    Rows.calls.clear()
    OtherRows.calls.clear()


def names() -> list[str]:
    return list(StatusSample.objects.order_by("id").values_list("name", flat=True))


def test_the_rows_of_a_block_are_written_together_at_its_commit() -> None:
    hooks = [Rows("a"), Rows("b"), Rows("c")]
    with transaction.atomic():
        assert precommit.deferring("default")
        for hook in hooks:
            precommit.defer(hook, "default")
        assert names() == []  # nothing written before the commit
    assert Rows.calls == [("Rows", ["a", "b", "c"], True)]
    assert names() == ["a", "b", "c"]
    assert all(h.ran for h in hooks)  # Django called each hook after the commit


def test_a_savepoint_that_rolls_back_drops_only_its_rows() -> None:
    with transaction.atomic():
        precommit.defer(Rows("kept-1"), "default")
        try:
            with transaction.atomic():
                precommit.defer(Rows("dropped"), "default")
                raise ValueError
        except ValueError:
            pass
        precommit.defer(Rows("kept-2"), "default")
    assert names() == ["kept-1", "kept-2"]


def test_a_rolled_back_transaction_writes_nothing() -> None:
    with pytest.raises(ValueError), transaction.atomic():
        precommit.defer(Rows("x"), "default")
        raise ValueError
    assert Rows.calls == []
    assert names() == []


def test_classes_write_in_order_of_first_appearance_and_only_the_last_is_final() -> None:
    with transaction.atomic():
        precommit.defer(OtherRows("o1"), "default")
        precommit.defer(Rows("r1"), "default")
        precommit.defer(OtherRows("o2"), "default")
    assert OtherRows.calls == [("OtherRows", ["o1", "o2"], False)]
    assert Rows.calls == [("Rows", ["r1"], True)]
    assert names() == ["o1", "o2", "r1"]


def test_a_failing_write_commits_nothing_of_the_block() -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        StatusSample.objects.create(taken_at=timezone.now(), package="p", name="mine", value=1)
        precommit.defer(Failing(), "default")
    assert names() == []
    StatusSample.objects.create(taken_at=timezone.now(), package="p", name="after", value=1)
    assert names() == ["after"]  # the connection is usable again


def test_an_error_that_is_not_the_database_s_rolls_back_and_is_raised() -> None:
    with pytest.raises(RuntimeError, match="cannot build"), transaction.atomic():
        StatusSample.objects.create(taken_at=timezone.now(), package="p", name="mine", value=1)
        precommit.defer(Broken(), "default")
    assert names() == []
    assert connection.get_autocommit()
    StatusSample.objects.create(taken_at=timezone.now(), package="p", name="after", value=1)
    assert names() == ["after"]


def test_with_autocommit_off_each_hook_is_written_once() -> None:
    """Django keeps the hooks until autocommit is on again: a second commit() skips them."""
    transaction.set_autocommit(False)
    try:
        with transaction.atomic():
            precommit.defer(Rows("manual"), "default")
        transaction.commit()
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert Rows.calls == [("Rows", ["manual"], True)]
    assert names() == ["manual"]


def test_a_commit_swapped_and_put_back_is_wrapped_again(monkeypatch) -> None:
    """Code that replaces ``commit`` and restores the one it found (a test's monkeypatch)
    must not leave the connection without the write before the commit."""
    with transaction.atomic():
        precommit.defer(Rows("first"), "default")
    wrapper = connections["default"]
    plain_commit = type(wrapper).commit.__get__(wrapper)
    monkeypatch.setattr(wrapper, "commit", plain_commit)  # the wrapper is gone
    with transaction.atomic():
        precommit.defer(Rows("second"), "default")
    assert names() == ["first", "second"]


def test_a_unique_violation_in_the_write_fails_the_commit() -> None:
    class Twice(Rows):
        __slots__ = ()

        @classmethod
        def write(cls, connection: Any, hooks: list[Any], *, final: bool) -> None:
            sample = StatusSample.objects.create(
                taken_at=timezone.now(), package="p", name="dup", value=1
            )
            StatusSample.objects.create(
                id=sample.id, taken_at=timezone.now(), package="p", name="dup", value=1
            )

    with pytest.raises(IntegrityError), transaction.atomic():
        precommit.defer(Twice("t"), "default")
    assert names() == []


@pytest.mark.django_db(transaction=False)
def test_a_test_case_s_own_blocks_are_not_deferring() -> None:
    assert not precommit.deferring("default")
    with transaction.atomic():
        assert not precommit.deferring("default")
