"""The one model of core: the periodic samples behind the admin dashboard's chart."""

from __future__ import annotations

from typing import Any

from django.db import models


class StatusSample(models.Model):
    """One figure at one moment, written by a worker every ``MESSAGING["STATUS"]
    ["SAMPLE_INTERVAL"]`` seconds (see :mod:`django_messaging.core.sampling`): the sum of a status
    metric over its labels (``outbox_backlog``, ``kafka_consumer_lag``, ...), or a worker's
    ``throughput`` in messages per second since its previous sample."""

    taken_at: models.DateTimeField[Any, Any] = models.DateTimeField(db_index=True)
    package: models.CharField[Any, Any] = models.CharField(max_length=50)
    name: models.CharField[Any, Any] = models.CharField(max_length=100)
    value: models.FloatField[Any, Any] = models.FloatField()

    class Meta:
        verbose_name = "status"
        verbose_name_plural = "status"
        ordering = ["-taken_at"]

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M:%S} {self.package} {self.name} = {self.value}"
