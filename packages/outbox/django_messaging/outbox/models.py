"""The outbox table (``Published``) and the processed-message table (``Received``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.correlation import get_correlation_id, with_correlation_id
from django_messaging.outbox.managers import PublishedQuerySet


def one_more_day(start: dt.datetime | None = None) -> dt.datetime:
    return (start or timezone.now()) + dt.timedelta(days=1)


def _one_more_day() -> dt.datetime:
    return one_more_day()


class Published(models.Model):
    """One message to send. Rows are written in the caller's transaction and sent by the relay
    (``./manage.py publish``) once that transaction has committed."""

    id: models.UUIDField[Any, Any] = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False
    )
    version: models.CharField[Any, Any] = models.CharField(max_length=100, null=True, blank=True)
    destination: models.CharField[Any, Any] = models.CharField(max_length=255)
    #: The message as JSON, encoded by ``DEFAULT_BODY_SERIALIZER`` when sent; ``None`` when the
    #: row carries its bytes in ``payload``.
    body: models.JSONField[Any, Any] = models.JSONField(
        encoder=DjangoJSONEncoder, null=True, blank=True
    )
    headers: models.JSONField[Any, Any] = models.JSONField(
        default=dict, blank=True, encoder=DjangoJSONEncoder
    )
    added: models.DateTimeField[Any, Any] = models.DateTimeField(
        default=timezone.now, editable=False
    )
    #: Kept for compatibility; the relay never skips a row because of it.
    expires_at: models.DateTimeField[Any, Any] = models.DateTimeField(default=_one_more_day)
    retry: models.PositiveIntegerField[Any, Any] = models.PositiveIntegerField(default=0)
    status: models.IntegerField[Any, Any] = models.IntegerField(
        choices=StatusChoice.choices, default=StatusChoice.SCHEDULE
    )
    #: The relay does not send the row before this time (set by the retry backoff).
    available_at: models.DateTimeField[Any, Any] = models.DateTimeField(default=timezone.now)
    claimed_by: models.CharField[Any, Any] = models.CharField(
        max_length=64, null=True, blank=True, editable=False
    )
    claimed_until: models.DateTimeField[Any, Any] = models.DateTimeField(
        null=True, blank=True, editable=False
    )
    sent_at: models.DateTimeField[Any, Any] = models.DateTimeField(null=True, blank=True)
    last_error: models.TextField[Any, Any] = models.TextField(blank=True, default="")
    #: The name of the transport in ``MESSAGING["OUTBOX"]["TRANSPORTS"]`` that sends the row.
    transport: models.CharField[Any, Any] = models.CharField(max_length=100, default="default")
    #: The message key: rows sharing a transport and a key reach the broker in the order they
    #: were written. A Kafka transport sends it as the record key.
    key: models.CharField[Any, Any] = models.CharField(max_length=255, null=True, blank=True)
    #: The message exactly as bytes (a Kafka record serialized when it was produced); the
    #: exact record key and headers are then in ``headers`` (see ``payloads``).
    payload: models.BinaryField[Any, Any] = models.BinaryField(null=True, blank=True)

    objects = PublishedQuerySet.as_manager()

    class Meta:
        verbose_name = "published message"
        verbose_name_plural = "published messages"
        # The relay walks unsent rows in ``added`` order through the first, and looks up the
        # earlier unsent rows of a key through the second; retention finds sent rows through
        # the third. Partial (PostgreSQL, SQLite): marking a row sent takes it out of the first
        # two instead of adding entries to them, and they stay as small as the backlog. The
        # claim columns are not indexed, so claiming a row can be a HOT update on PostgreSQL.
        # (MySQL and MariaDB have no partial indexes: they keep full ones, see migration 0004.)
        indexes = [
            models.Index(
                fields=["status", "added", "id"],
                name="msg_outbox_pub_unsent",
                condition=~models.Q(status=StatusChoice.SUCCEEDED),
            ),
            models.Index(
                fields=["key", "transport", "added"],
                name="msg_outbox_pub_key_unsent",
                condition=~models.Q(status=StatusChoice.SUCCEEDED) & models.Q(key__isnull=False),
            ),
            models.Index(
                fields=["sent_at"],
                name="msg_outbox_pub_sent",
                condition=models.Q(status=StatusChoice.SUCCEEDED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.destination} {self.id} ({StatusChoice(self.status).label})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if (
            self._state.adding
            and self.version
            and not self.destination.endswith(f".{self.version}")
        ):
            self.destination = f"{self.destination}.{self.version}"
        if self._state.adding and (isinstance(self.headers, dict) or not self.headers):
            self.headers = with_correlation_id(self.headers, get_correlation_id())
        super().save(*args, **kwargs)


class Received(models.Model):
    """A message a subscriber processed; ``(msg_id, queue)`` is unique, so a redelivered or
    re-sent message is acknowledged without running the callback again."""

    id: models.UUIDField[Any, Any] = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False
    )
    msg_id: models.CharField[Any, Any] = models.CharField(max_length=255)
    queue: models.CharField[Any, Any] = models.CharField(max_length=255, default="", blank=True)
    headers: models.JSONField[Any, Any] = models.JSONField(
        null=True, blank=True, encoder=DjangoJSONEncoder
    )
    body: models.JSONField[Any, Any] = models.JSONField(
        null=True, blank=True, encoder=DjangoJSONEncoder
    )
    added: models.DateTimeField[Any, Any] = models.DateTimeField(
        default=timezone.now, editable=False
    )
    expires_at: models.DateTimeField[Any, Any] = models.DateTimeField(default=_one_more_day)
    retry: models.PositiveIntegerField[Any, Any] = models.PositiveIntegerField(default=0)
    status: models.IntegerField[Any, Any] = models.IntegerField(
        choices=StatusChoice.choices, default=StatusChoice.SUCCEEDED
    )

    class Meta:
        verbose_name = "received message"
        verbose_name_plural = "received messages"
        constraints = [
            models.UniqueConstraint(fields=["msg_id", "queue"], name="msg_outbox_received_once")
        ]
        indexes = [models.Index(fields=["added"], name="msg_outbox_rec_added")]

    def __str__(self) -> str:
        return f"{self.msg_id} on {self.queue or '-'}"

    @property
    def destination(self) -> str:
        if not isinstance(self.headers, dict):
            return ""
        return str(self.headers.get("destination", ""))
