"""Helpers of the management commands: keyset batches, progress lines, JSON in and out."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from django.core.management import CommandError
from django.db import models

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.registries import MasterRegistry, ReplicaRegistry


def batch_qs(queryset: models.QuerySet, batch_size: int = 10000) -> Iterator[list[Any]]:
    """Batches of ``queryset`` ordered by pk, paginated by key (``pk > last``), not OFFSET.

    Safe under concurrent writes (no row is skipped or repeated because of an earlier insert or
    delete) and every batch costs the same.
    """
    queryset = queryset.order_by("pk")
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        rows = list(page[:batch_size])
        if not rows:
            return
        yield rows
        last = rows[-1].pk
        if len(rows) < batch_size:
            return


def batch_values(
    queryset: models.QuerySet, fields: tuple[str, ...], batch_size: int = 10000
) -> Iterator[list[tuple]]:
    """Like :func:`batch_qs` for ``values_list(*fields)``; the first field must be ``pk``."""
    queryset = queryset.order_by("pk")
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        rows = list(page.values_list(*fields)[:batch_size])
        if not rows:
            return
        yield rows
        last = rows[-1][0]
        if len(rows) < batch_size:
            return


class Progress:
    """``done/total (pct) rate/s ETA`` lines on stderr, at most one per batch; ``done, rate/s``
    when the total is not known in advance (``total=None``, e.g. a pipeline read from stdin)."""

    def __init__(self, total: int | None, stream: Any, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.done = 0
        self.started = time.monotonic()

    def add(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            line = f"{self.done} rows, {rate:.0f} rows/s"
        else:
            left = self.total - self.done
            eta = f"{left / rate:.0f}s" if rate > 0 else "n/a"
            percent = 100.0 * self.done / self.total if self.total else 100.0
            line = f"{self.done}/{self.total} ({percent:.1f}%), {rate:.0f} rows/s, ETA {eta}"
        self.stream.write(line + "\n")
        self.stream.flush()


def master_model(cqrs_id: str) -> Any:
    model = MasterRegistry.models.get(cqrs_id)
    if model is None:
        raise CommandError(
            f"Wrong CQRS ID: {cqrs_id!r} is not a master model here "
            f"(known: {', '.join(sorted(MasterRegistry.models)) or 'none'})."
        )
    return model


def replica_model(cqrs_id: str) -> Any:
    model = ReplicaRegistry.models.get(cqrs_id)
    if model is None or not hasattr(model, "_meta"):
        raise CommandError(
            f"Wrong CQRS ID: {cqrs_id!r} is not a replica model here "
            f"(known: {', '.join(sorted(ReplicaRegistry.models)) or 'none'})."
        )
    return model


def parse_filter(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise CommandError(f"--filter is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise CommandError("--filter must be a JSON object of lookups, e.g. '{\"id__in\": [1, 2]}'")
    return parsed


def to_json(value: Any) -> str:
    return get_serializer("json").dumps(value).decode()


def stdin() -> TextIO:
    return sys.stdin
