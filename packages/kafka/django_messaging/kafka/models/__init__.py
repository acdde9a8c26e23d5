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


class WaitingMessage(models.Model):
    """A message parked by the relations resolver (:mod:`.relations`): a row it needs did not
    exist yet, or an earlier message of its key was waiting. Its offset was stored; the
    resolver replays it once its relations exist."""

    WAITING = "waiting"
    REPLAYED = "replayed"
    DISCARDED = "discarded"
    STATUSES = [
        (WAITING, "waiting"),
        (REPLAYED, "replayed"),
        (DISCARDED, "discarded (tombstone)"),
    ]

    consumer: models.CharField[Any, Any] = models.CharField(
        max_length=255, help_text="registry key of the consumer class (module.ClassName)"
    )
    topic: models.CharField[Any, Any] = models.CharField(max_length=255)
    partition: models.IntegerField[Any, Any] = models.IntegerField()
    offset: models.BigIntegerField[Any, Any] = models.BigIntegerField()
    key_digest: models.CharField[Any, Any] = models.CharField(
        max_length=64, blank=True, help_text="sha256 of the message key; empty: no key"
    )
    key: models.BinaryField[Any, Any] = models.BinaryField(null=True)
    value: models.BinaryField[Any, Any] = models.BinaryField(null=True)
    headers: models.JSONField[Any, Any] = models.JSONField(
        default=list, help_text="[name, hex value] pairs"
    )
    timestamp: models.BigIntegerField[Any, Any] = models.BigIntegerField(null=True)
    relations: models.JSONField[Any, Any] = models.JSONField(
        default=list, help_text="[app_label.model, field, value] the message needs"
    )
    status: models.CharField[Any, Any] = models.CharField(
        max_length=16, choices=STATUSES, default=WAITING
    )
    created_at: models.DateTimeField[Any, Any] = models.DateTimeField(default=timezone.now)
    updated_at: models.DateTimeField[Any, Any] = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "waiting Kafka message"
        ordering = ["topic", "partition", "offset"]
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "topic", "partition", "offset"],
                name="messaging_kafka_waiting_once",
            )
        ]
        indexes = [
            models.Index(
                fields=["status", "consumer", "topic", "key_digest", "offset"],
                name="messaging_kafka_waiting_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic} [{self.partition}] @{self.offset} ({self.status})"
