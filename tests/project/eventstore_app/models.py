"""Models the eventstore tests and the demo use: a materialised view kept by a projection."""

from __future__ import annotations

from django.db import models


class EventCounter(models.Model):
    """How many events of one kind a projection has counted (the read model of the tests)."""

    name = models.CharField(max_length=100, unique=True)
    count = models.BigIntegerField(default=0)

    class Meta:
        db_table = "test_eventstore_event_counter"

    def __str__(self) -> str:
        return f"{self.name}: {self.count}"


class TrickCount(models.Model):
    """The demo's and the sync_followers tests' read model: tricks learnt per dog."""

    dog = models.CharField(max_length=100, primary_key=True)
    tricks = models.IntegerField(default=0)

    class Meta:
        db_table = "test_eventstore_trick_count"

    def __str__(self) -> str:
        return f"{self.dog}: {self.tricks}"
