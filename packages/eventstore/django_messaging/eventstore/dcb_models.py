"""Tables of the dynamic consistency boundary (DCB) event store (app label ``messaging_eventstore``).

All DCB applications of a database share these tables, keyed by the application's name. Each
application has its own contiguous sequence of positions 1, 2, 3...: its row in
:class:`DCBSequence` hands them out, and is the lock that serialises the application's appends
(so an append condition is checked against everything committed before the append).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from django_messaging.eventstore.dcb_tables import (
    DCB_EVENTS_TABLE,
    DCB_SEQUENCE_TABLE,
    DCB_TAG_LENGTH,
    DCB_TAGS_TABLE,
    DCB_TYPE_LENGTH,
)
from django_messaging.eventstore.tables import APPLICATION_NAME_LENGTH


class DCBEventRecord(models.Model):
    """One event of a DCB application, at its position in the application's sequence."""

    id: models.Field[Any, Any] = models.BigAutoField(primary_key=True)
    application_name: models.Field[Any, Any] = models.CharField(max_length=APPLICATION_NAME_LENGTH)
    position: models.Field[Any, Any] = models.BigIntegerField()
    type: models.Field[Any, Any] = models.CharField(max_length=DCB_TYPE_LENGTH)
    data: models.Field[Any, Any] = models.BinaryField()
    #: The event's tags in the order they were given (the tag table is what queries use).
    tags: models.Field[Any, Any] = models.JSONField(default=list)

    class Meta:
        db_table = DCB_EVENTS_TABLE
        verbose_name = "DCB event"
        constraints = [
            models.UniqueConstraint(
                fields=["application_name", "position"], name="messaging_es_dcb_position_uniq"
            ),
        ]
        indexes = [
            models.Index(
                fields=["application_name", "type", "position"], name="messaging_es_dcb_type_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application_name} @{self.position} {self.type}"


class DCBTagRecord(models.Model):
    """One tag of one DCB event: what a query by tag looks up."""

    id: models.Field[Any, Any] = models.BigAutoField(primary_key=True)
    application_name: models.Field[Any, Any] = models.CharField(max_length=APPLICATION_NAME_LENGTH)
    tag: models.Field[Any, Any] = models.CharField(max_length=DCB_TAG_LENGTH)
    position: models.Field[Any, Any] = models.BigIntegerField()

    class Meta:
        db_table = DCB_TAGS_TABLE
        verbose_name = "DCB event tag"
        constraints = [
            models.UniqueConstraint(
                fields=["application_name", "tag", "position"], name="messaging_es_dcb_tag_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application_name} @{self.position} {self.tag}"


class DCBSequence(models.Model):
    """The last position handed out in one DCB application (its append lock, too)."""

    application_name: models.Field[Any, Any] = models.CharField(
        max_length=APPLICATION_NAME_LENGTH, primary_key=True
    )
    last_position: models.Field[Any, Any] = models.BigIntegerField(default=0)

    class Meta:
        db_table = DCB_SEQUENCE_TABLE
        verbose_name = "DCB sequence"

    def __str__(self) -> str:
        return f"{self.application_name}: {self.last_position}"
