"""A relay store written against the core protocol alone, over the outbox's ``Published`` table
with plain ORM statements: what another package (CQRS pending messages, an event forwarder)
implements. ``ordered=True`` orders by the ``key`` header of each row."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Hashable, Sequence

from django.db import router, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from django_messaging.core.relay import Retry
from django_messaging.core.transports import OutgoingMessage
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published


class KeyedStore:
    def __init__(self, *, ordered: bool = False, using: str | None = None) -> None:
        self.ordered = ordered
        self.using = using or router.db_for_write(Published)

    def _rows(self) -> QuerySet[Published]:
        return Published.objects.using(self.using).all()

    def claim(self, owner: str, size: int, lease: float) -> list[Published]:
        now = timezone.now()
        until = now + dt.timedelta(seconds=lease)
        with transaction.atomic(using=self.using):
            # The unsent rows, locked, oldest first: a row whose key has an earlier unsent row
            # that cannot go now (leased, not due, given up) waits for it.
            unsent = (
                self._rows()
                .select_for_update()
                .exclude(status=StatusChoice.SUCCEEDED)
                .order_by("added", "id")
            )
            blocked: set[str] = set()
            chosen = []
            for row in unsent:
                key = self.ordering_key(row) if self.ordered else None
                if key is not None and key in blocked:
                    continue
                free = row.claimed_until is None or row.claimed_until < now
                if row.status == StatusChoice.SCHEDULE and row.available_at <= now and free:
                    chosen.append(row.id)
                    if len(chosen) == size:
                        break
                elif key is not None:
                    blocked.add(key)
            self._rows().filter(id__in=chosen).filter(
                Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
            ).update(claimed_by=owner, claimed_until=until)
        return list(self._rows().filter(id__in=chosen, claimed_by=owner).order_by("added", "id"))

    def renew(self, owner: str, ids: Sequence[Hashable], lease: float) -> int:
        return (
            self._held(owner)
            .filter(id__in=ids)
            .update(claimed_until=timezone.now() + dt.timedelta(seconds=lease))
        )

    def _held(self, owner: str) -> QuerySet[Published]:
        return self._rows().filter(claimed_by=owner, status=StatusChoice.SCHEDULE)

    def mark_sent(self, owner: str, ids: Sequence[Hashable]) -> None:
        self._held(owner).filter(id__in=ids).update(
            status=StatusChoice.SUCCEEDED,
            sent_at=timezone.now(),
            claimed_by=None,
            claimed_until=None,
        )

    def release(self, owner: str, ids: Sequence[Hashable] | None = None) -> int:
        rows = self._held(owner)
        if ids is not None:
            rows = rows.filter(id__in=ids)
        return rows.update(claimed_by=None, claimed_until=None)

    def reschedule(self, owner: str, retries: Sequence[Retry]) -> None:
        for retry in retries:
            later = (
                {"status": StatusChoice.FAILED}
                if retry.available_at is None
                else {"available_at": retry.available_at}
            )
            self._held(owner).filter(id__in=retry.ids).update(
                retry=retry.attempts,
                last_error=retry.error,
                claimed_by=None,
                claimed_until=None,
                **later,
            )

    def purge(self, before: dt.datetime, batch_size: int) -> int:
        total = 0
        while True:
            ids = list(
                self._rows()
                .filter(status=StatusChoice.SUCCEEDED, sent_at__lt=before)
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return total
            total += self._rows().filter(id__in=ids).delete()[0]

    def row_id(self, row: Published) -> Hashable:
        return row.id

    def attempts(self, row: Published) -> int:
        return int(row.retry)

    def ordering_key(self, row: Published) -> str | None:
        key = (row.headers or {}).get("key")
        return None if key is None else str(key)

    def to_messages(
        self, rows: Sequence[Published]
    ) -> tuple[list[OutgoingMessage], dict[Hashable, str]]:
        messages = []
        for row in rows:
            headers = {str(k): str(v) for k, v in (row.headers or {}).items()}
            headers["dop-msg-id"] = str(row.id)
            messages.append(
                OutgoingMessage(
                    key=row.id,
                    destination=row.destination,
                    body=json.dumps(row.body).encode(),
                    headers=headers,
                    content_type="application/json",
                    ordering_key=self.ordering_key(row),
                )
            )
        return messages, {}
