"""The outbox's figures for ``manage.py messaging_status`` and the Prometheus gauges: rows not
sent yet, how long the oldest has waited, and rows given up (``FAILED``)."""

from __future__ import annotations

from django.db import router
from django.db.models import Count, Min
from django.utils import timezone

from django_messaging.core.status import Figure, Kind
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.conf import settings
from django_messaging.outbox.models import Published


def figures(timeout: float) -> list[Figure]:
    """The figures of each database that holds outbox rows (``OUTBOX["DATABASES"]``)."""
    aliases = settings.DATABASES or [router.db_for_read(Published)]
    return [figure for alias in aliases for figure in _figures_of(alias)]


def _figures_of(alias: str) -> list[Figure]:
    """Two short statements on the index of unsent rows: sent rows are not read."""
    # The index's own condition, repeated: SQLite uses a partial index only then.
    rows = Published.objects.using(alias).exclude(status=StatusChoice.SUCCEEDED)
    pending = rows.filter(status=StatusChoice.SCHEDULE).aggregate(
        n=Count("pk"), oldest=Min("added")
    )
    failed = rows.filter(status=StatusChoice.FAILED).count()
    oldest = pending["oldest"]
    age = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest is not None else 0.0
    of = (("database", alias),)
    return [
        Figure(
            "outbox",
            "outbox_backlog",
            Kind.BACKLOG,
            pending["n"],
            of,
            help="outbox rows not sent yet",
        ),
        Figure(
            "outbox",
            "outbox_oldest_unsent_age_seconds",
            Kind.AGE,
            round(age, 3),
            of,
            help="seconds since the oldest unsent outbox row was written",
        ),
        Figure(
            "outbox", "outbox_failed", Kind.DEAD_LETTERS, failed, of, help="outbox rows given up"
        ),
    ]
