"""Tables of the event store (app label ``messaging_eventstore``).

All applications of a Django database share these tables; rows are keyed by the
application's name. Each application has its own notification sequence: its counter row in
:class:`NotificationSequence` hands out contiguous ids 1, 2, 3... under a row lock, so one
application's writers never wait for another's and readers of the log never see a gap that
is filled later (see the README, "How the notification log stays gap-free").
"""

from __future__ import annotations

from typing import Any

from django.db import models

from django_messaging.eventstore.tables import (
    AGGREGATE_TABLE,
    APPLICATION_NAME_LENGTH,
    EVENTS_TABLE,
    ORIGINATOR_ID_LENGTH,
    SEQUENCE_TABLE,
    TRACKING_TABLE,
)


class StoredEventRecord(models.Model):
    """One stored domain event, positioned in its aggregate and in its application's log."""

    id: models.Field[Any, Any] = models.BigAutoField(primary_key=True)
    application_name: models.Field[Any, Any] = models.CharField(max_length=APPLICATION_NAME_LENGTH)
    notification_id: models.Field[Any, Any] = models.BigIntegerField()
    originator_id: models.Field[Any, Any] = models.CharField(max_length=ORIGINATOR_ID_LENGTH)
    originator_version: models.Field[Any, Any] = models.BigIntegerField()
    topic: models.Field[Any, Any] = models.TextField()
    state: models.Field[Any, Any] = models.BinaryField()

    class Meta:
        db_table = EVENTS_TABLE
        verbose_name = "stored event"
        constraints = [
            models.UniqueConstraint(
                fields=["application_name", "originator_id", "originator_version"],
                name="messaging_es_event_version_uniq",
            ),
            models.UniqueConstraint(
                fields=["application_name", "notification_id"],
                name="messaging_es_event_notification_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application_name} #{self.notification_id} {self.topic}"


class AggregateRecord(models.Model):
    """A stored event of an aggregate recorder: snapshots, or any other ``purpose``."""

    id: models.Field[Any, Any] = models.BigAutoField(primary_key=True)
    application_name: models.Field[Any, Any] = models.CharField(max_length=APPLICATION_NAME_LENGTH)
    purpose: models.Field[Any, Any] = models.CharField(max_length=50, default="snapshots")
    originator_id: models.Field[Any, Any] = models.CharField(max_length=ORIGINATOR_ID_LENGTH)
    originator_version: models.Field[Any, Any] = models.BigIntegerField()
    topic: models.Field[Any, Any] = models.TextField()
    state: models.Field[Any, Any] = models.BinaryField()

    class Meta:
        db_table = AGGREGATE_TABLE
        verbose_name = "snapshot or aggregate record"
        constraints = [
            models.UniqueConstraint(
                fields=["application_name", "purpose", "originator_id", "originator_version"],
                name="messaging_es_aggregate_version_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application_name} {self.purpose} {self.originator_id} v{self.originator_version}"


class NotificationTrackingRecord(models.Model):
    """How far ``application_name`` has processed the log of ``upstream_application_name``.

    One row per pair, moved forward only: recording a position that is not beyond the stored
    one is an integrity error.
    """

    id: models.Field[Any, Any] = models.BigAutoField(primary_key=True)
    application_name: models.Field[Any, Any] = models.CharField(max_length=APPLICATION_NAME_LENGTH)
    upstream_application_name: models.Field[Any, Any] = models.CharField(
        max_length=APPLICATION_NAME_LENGTH
    )
    notification_id: models.Field[Any, Any] = models.BigIntegerField()

    class Meta:
        db_table = TRACKING_TABLE
        verbose_name = "notification tracking position"
        constraints = [
            models.UniqueConstraint(
                fields=["application_name", "upstream_application_name"],
                name="messaging_es_tracking_uniq",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.application_name} <- {self.upstream_application_name} @{self.notification_id}"
        )


class NotificationSequence(models.Model):
    """The last notification id handed out for one application (its write lock, too)."""

    application_name: models.Field[Any, Any] = models.CharField(
        max_length=APPLICATION_NAME_LENGTH, primary_key=True
    )
    last_id: models.Field[Any, Any] = models.BigIntegerField(default=0)

    class Meta:
        db_table = SEQUENCE_TABLE
        verbose_name = "notification sequence"

    def __str__(self) -> str:
        return f"{self.application_name}: {self.last_id}"


#: eventsourcing-django's name for the snapshots model.
SnapshotRecord = AggregateRecord


# The DCB tables live in their own module; importing them here registers them with the app.
from django_messaging.eventstore.dcb_models import (  # noqa: E402
    DCBEventRecord,
    DCBSequence,
    DCBTagRecord,
)

__all__ = [
    "AggregateRecord",
    "DCBEventRecord",
    "DCBSequence",
    "DCBTagRecord",
    "NotificationSequence",
    "NotificationTrackingRecord",
    "SnapshotRecord",
    "StoredEventRecord",
]
