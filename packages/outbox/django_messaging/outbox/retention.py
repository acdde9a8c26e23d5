"""Delete old outbox and received rows in batches; never a row that was not sent.

``Published`` rows go only once ``SUCCEEDED`` (by ``sent_at``, or ``added`` for rows sent
before ``sent_at`` existed); ``SCHEDULE`` and ``FAILED`` rows stay until they are sent.
``Received`` rows go by ``added``: a message redelivered after its row was purged would be
processed again, so keep them longer than any redelivery can take.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

from django.db.models import QuerySet
from django.utils import timezone

from django_messaging.outbox.conf import settings
from django_messaging.outbox.managers import PublishedQuerySet
from django_messaging.outbox.models import Published, Received


@dataclass
class PurgeResult:
    published: int = 0
    received: int = 0


def delete_in_batches(queryset: QuerySet, batch_size: int, dry_run: bool) -> int:
    if dry_run:
        return queryset.count()
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        batch = queryset.model._default_manager.using(queryset.db).filter(pk__in=ids)
        deleted, _ = batch.delete()
        total += deleted


def purge(
    days: float | None = None,
    *,
    batch_size: int | None = None,
    published: bool = True,
    received: bool = True,
    dry_run: bool = False,
    using: str | None = None,
) -> PurgeResult:
    """Delete sent ``Published`` rows and ``Received`` rows older than ``days`` from database
    ``using`` (default: the one the router gives for writing each model)."""
    days = float(settings.DAYS_TO_KEEP_DATA if days is None else days)
    size = int(batch_size or settings.PURGE_BATCH_SIZE)
    cutoff = timezone.now() - dt.timedelta(days=days)
    result = PurgeResult()
    if published:
        rows = Published.objects.using(using) if using else Published.objects.all()
        old = cast(PublishedQuerySet, rows).sent_before(cutoff)
        result.published = delete_in_batches(old, size, dry_run)
    if received:
        received_rows = Received.objects.using(using) if using else Received.objects.all()
        result.received = delete_in_batches(received_rows.filter(added__lt=cutoff), size, dry_run)
    return result
