"""Periodic samples of the status figures, for the admin dashboard's chart of the last hour.

A worker loop (:func:`django_messaging.core.worker.run_worker`) holds a :class:`Sampler` and
calls :meth:`Sampler.tick` after each unit of work. ``tick`` is a clock comparison; once every ``SAMPLE_INTERVAL`` seconds
it writes :class:`~django_messaging.core.models.StatusSample` rows:

* the figures of :func:`django_messaging.core.status.collect` whose kind is a backlog or a lag,
  summed over their labels (one row per package and metric);
* ``throughput``: the messages this worker handled per second since its previous sample, for a
  worker that counts them (:meth:`Worker.messages_handled <django_messaging.core.worker.Worker.messages_handled>`: the
  outbox relay of ``publish``, the outbox subscriber of ``subscribe`` and the Kafka consumer
  count them).

Rows older than ``SAMPLE_RETENTION`` seconds are deleted at the same time. When several worker
processes run, the status figures are written by whichever one finds no sample younger than
the interval, so they are not written twice. Settings (``MESSAGING["STATUS"]``)::

    MESSAGING = {"STATUS": {"SAMPLE_INTERVAL": 60, "SAMPLE_RETENTION": 3600}}

``SAMPLE_INTERVAL`` of ``0`` turns sampling off.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import DatabaseError
from django.utils import timezone

from django_messaging.core import status
from django_messaging.core.settings import Section, Setting

if TYPE_CHECKING:
    from django_messaging.core.worker import Worker

__all__ = ["THROUGHPUT", "TIMEOUT", "Sampler", "record", "settings"]

logger = logging.getLogger(__name__)


def _non_negative(value: float) -> str | None:
    return "must be 0 or more" if value < 0 else None


settings = Section(
    "STATUS",
    "django_messaging.core",
    {
        "SAMPLE_INTERVAL": Setting(
            60.0,
            (int, float),
            validate=_non_negative,
            help="seconds between two samples of a worker (0: no samples)",
        ),
        "SAMPLE_RETENTION": Setting(
            3600.0,
            (int, float),
            validate=_non_negative,
            help="seconds a sample is kept",
        ),
    },
)

#: Seconds each status source may wait for its broker during a sample (the worker waits too).
TIMEOUT = 2.0
#: The name of a worker's throughput samples (messages per second).
THROUGHPUT = "throughput"
#: Kinds of figure sampled: what grows when messages are not getting through.
SAMPLED_KINDS = {status.Kind.BACKLOG, status.Kind.LAG}


class Sampler:
    """Samples for one worker loop; ``package`` labels its throughput rows, ``handled`` returns
    the messages the worker has handled so far (``None``: it does not count them)."""

    def __init__(
        self,
        package: str,
        interval: float,
        handled: Callable[[], int | None] = lambda: None,
        timeout: float | None = None,
    ) -> None:
        self.package = package[:50]
        self.interval = interval
        self.handled = handled
        self.timeout = timeout
        self.since = time.monotonic()
        self.next_at = self.since + interval
        self.count = handled()

    @classmethod
    def for_worker(cls, worker: Worker) -> Sampler | None:
        """A sampler of ``worker`` with the configured interval, ``None`` when sampling is off."""
        interval = float(settings.get("SAMPLE_INTERVAL"))
        return cls(worker.name, interval, worker.messages_handled) if interval > 0 else None

    def tick(self) -> None:
        """Called after each unit of work: a clock comparison, and a sample when one is due."""
        now = time.monotonic()
        if now < self.next_at:
            return
        count = self.handled()
        rate = None
        if count is not None and self.count is not None:
            rate = max(0, count - self.count) / (now - self.since)
        self.count, self.since, self.next_at = count, now, now + self.interval
        try:
            timeout = TIMEOUT if self.timeout is None else self.timeout
            record(self.package, rate, self.interval, timeout)
        except DatabaseError as exc:  # a sample is never worth stopping a worker for
            logger.warning("status sample not written: %s", exc)
        except Exception:
            logger.exception("status sample not written")


def record(
    package: str | None, throughput: float | None, interval: float, timeout: float = TIMEOUT
) -> int:
    """Write one round of samples now; the number of rows written.

    The status figures are skipped when another process wrote some less than ``interval``
    seconds ago (``interval`` 0: always written).
    """
    from django_messaging.core.models import StatusSample

    now = timezone.now()
    rows = []
    if throughput is not None and package is not None:
        rows.append(StatusSample(taken_at=now, package=package, name=THROUGHPUT, value=throughput))
    recent = now - timedelta(seconds=interval * 0.9)
    if (
        interval <= 0
        or not StatusSample.objects.filter(taken_at__gt=recent).exclude(name=THROUGHPUT).exists()
    ):
        sums: dict[tuple[str, str], float] = defaultdict(float)
        for figure in status.collect(timeout).figures:
            if figure.kind in SAMPLED_KINDS:
                sums[(figure.package, figure.metric)] += figure.value
        rows.extend(
            StatusSample(taken_at=now, package=p, name=name, value=v)
            for (p, name), v in sums.items()
        )
    StatusSample.objects.bulk_create(rows)
    retention = float(settings.get("SAMPLE_RETENTION"))
    StatusSample.objects.filter(taken_at__lt=now - timedelta(seconds=retention)).delete()
    return len(rows)
