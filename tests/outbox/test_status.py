"""``messaging_status`` on the outbox: backlog, age of the oldest unsent row, failed rows."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published

pytestmark = pytest.mark.django_db


def _figures(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("messaging_status", "--json", "--package", "outbox", *args, stdout=out)
    return {f["metric"]: f["value"] for f in json.loads(out.getvalue())["figures"]}


def _row(status: int, minutes_ago: float) -> None:
    Published.objects.create(
        destination="/queue/status",
        body={"n": 1},
        status=status,
        added=timezone.now() - dt.timedelta(minutes=minutes_ago),
    )


def test_backlog_age_and_failed_rows() -> None:
    assert _figures() == {
        "outbox_backlog": 0,
        "outbox_oldest_unsent_age_seconds": 0,
        "outbox_failed": 0,
    }
    _row(StatusChoice.SCHEDULE, 10)
    _row(StatusChoice.SCHEDULE, 1)
    _row(StatusChoice.SUCCEEDED, 60)  # sent: neither backlog nor age
    _row(StatusChoice.FAILED, 30)
    figures = _figures("--max-backlog", "2", "--max-age", "900", "--max-dead-letters", "1")
    assert figures["outbox_backlog"] == 2
    assert 600 <= figures["outbox_oldest_unsent_age_seconds"] < 660
    assert figures["outbox_failed"] == 1


@pytest.mark.parametrize(
    ("option", "metric"),
    [
        (("--max-backlog", "1"), "outbox_backlog (database=default) = 2 > 1"),
        (("--max-age", "300"), "outbox_oldest_unsent_age_seconds (database=default) = 6"),
        (("--max-dead-letters", "0"), "outbox_failed (database=default) = 1 > 0"),
    ],
)
def test_a_limit_exceeded_exits_1(option: tuple[str, str], metric: str) -> None:
    _row(StatusChoice.SCHEDULE, 10)
    _row(StatusChoice.SCHEDULE, 1)
    _row(StatusChoice.FAILED, 1)
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("messaging_status", "--package", "outbox", *option, stdout=out)
    assert raised.value.returncode == 1
    assert metric in str(raised.value)
    assert "EXCEEDED" in out.getvalue()
