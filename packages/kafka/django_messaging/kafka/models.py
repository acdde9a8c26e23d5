"""``ProcessedMessage``: the ids of the messages idempotent topics handled (:mod:`.inbox`)."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone


class ProcessedMessage(models.Model):
    """A message a consumer group handled, written in the transaction of the handler."""

    consumer: models.CharField[Any, Any] = models.CharField(
        max_length=255, help_text="the consumer's group.id"
    )
    message_id: models.CharField[Any, Any] = models.CharField(
        max_length=255, help_text="the id header (dop-msg-id), else topic/partition/offset"
    )
    processed_at: models.DateTimeField[Any, Any] = models.DateTimeField(
        default=timezone.now, db_index=True
    )

    class Meta:
        verbose_name = "processed Kafka message"
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "message_id"], name="messaging_kafka_processed_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.message_id}"
