"""``outbox_purge``: old sent and received rows go in batches; unsent rows never do."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published, Received
from django_messaging.outbox.retention import purge

pytestmark = pytest.mark.django_db


def old(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def make(status: int, age_days: float, sent: bool = True) -> Published:
    return Published.objects.create(
        destination="/topic/r",
        body={},
        status=status,
        added=old(age_days),
        sent_at=old(age_days) if sent and status == StatusChoice.SUCCEEDED else None,
    )


def test_purge_keeps_unsent_and_recent_rows(capsys) -> None:
    """django-outbox-pattern 3.x deleted every row older than 30 days, unsent ones too."""
    gone = [make(StatusChoice.SUCCEEDED, 40) for _ in range(7)]
    kept = [
        make(StatusChoice.SUCCEEDED, 5),
        make(StatusChoice.SCHEDULE, 400),
        make(StatusChoice.FAILED, 400),
    ]
    Received.objects.create(msg_id="old", added=old(40))
    Received.objects.create(msg_id="new", added=old(1))
    call_command("outbox_purge", "--dry-run")
    assert "would delete 7 published and 1 received rows" in capsys.readouterr().out
    assert Published.objects.count() == 10
    with CaptureQueriesContext(connection) as ctx:
        result = purge(batch_size=3)
    deletes = [q for q in ctx.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) >= 3  # 7 rows in batches of 3
    assert (result.published, result.received) == (7, 1)
    assert set(Published.objects.values_list("id", flat=True)) == {r.id for r in kept}
    assert not Published.objects.filter(id__in=[r.id for r in gone]).exists()
    assert list(Received.objects.values_list("msg_id", flat=True)) == ["new"]


def test_purge_options(capsys) -> None:
    make(StatusChoice.SUCCEEDED, 10)
    Received.objects.create(msg_id="r", added=old(10))
    call_command("outbox_purge", "--days", "5", "--received-only")
    assert "deleted 0 published and 1 received rows" in capsys.readouterr().out
    call_command("outbox_purge", "--days", "5", "--published-only", "--batch-size", "1")
    assert "deleted 1 published and 0 received rows" in capsys.readouterr().out


def test_the_relay_store_purges_sent_rows_in_batches() -> None:
    from django_messaging.outbox.relay import PublishedStore

    now = timezone.now()
    old = [
        Published.objects.create(
            destination="/topic/r",
            body={},
            status=StatusChoice.SUCCEEDED,
            sent_at=now - dt.timedelta(days=3),
        )
        for _ in range(5)
    ]
    kept = [
        Published.objects.create(
            destination="/topic/r", body={}, status=StatusChoice.SUCCEEDED, sent_at=now
        ),
        Published.objects.create(destination="/topic/r", body={}, added=now - dt.timedelta(days=3)),
    ]
    assert PublishedStore().purge(now - dt.timedelta(days=1), batch_size=2) == len(old)
    assert set(Published.objects.values_list("id", flat=True)) == {r.id for r in kept}
