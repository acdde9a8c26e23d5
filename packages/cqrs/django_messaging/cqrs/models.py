# mypy: disable-error-code="var-annotated"
"""Rows the package keeps: messages waiting to be published, and deletes replicas remember."""

from __future__ import annotations

from django.db import models


class PendingMessage(models.Model):
    """A master message stored with its change, until the broker confirms it.

    Rows that stay (refused, unconfirmed, or left by a process that died) are re-sent, oldest
    first, by the core relay (:mod:`django_messaging.cqrs.relay`): after the next successful
    publish of a process, by ``manage.py cqrs_pending flush`` or by ``cqrs_pending run``. A relay
    leases the rows it sends (``claimed_by`` until ``claimed_until``) and deletes each once the
    broker confirmed it.
    """

    # Not indexed: every save writes a row and every confirm deletes one, and the table is
    # read in primary key order.
    created = models.DateTimeField(auto_now_add=True)
    cqrs_id = models.CharField(max_length=255)
    signal_type = models.CharField(max_length=16)
    instance_pk = models.CharField(max_length=255)
    queue = models.CharField(max_length=255, blank=True, default="")
    body = models.TextField(
        help_text="The message's JSON body; empty: send the instance as it is now."
    )
    attempts = models.PositiveIntegerField(default=1)
    last_error = models.TextField(blank=True, default="")
    # The relay's lease (NULL: not leased), and when a failed row may go again (NULL: now).
    claimed_by = models.CharField(max_length=255, null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    available_at = models.DateTimeField(null=True, blank=True)
    # The W3C trace context (``traceparent``, ``tracestate``, as JSON) of the save that stored
    # it; the relay sends it as message headers. NULL: tracing was off.
    trace_context = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "messaging_cqrs_pendingmessage"
        ordering = ["id"]
        verbose_name = "pending CQRS message"

    def __str__(self) -> str:
        return f"{self.signal_type} {self.cqrs_id} pk={self.instance_pk}"


class Tombstone(models.Model):
    """A delete applied on a replica: a SAVE older than this delete is dropped, not re-created."""

    cqrs_id = models.CharField(max_length=255)
    instance_pk = models.CharField(max_length=255)
    revision = models.IntegerField(null=True)
    deleted_at = models.DateTimeField(help_text="The master's time of the delete.")
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "messaging_cqrs_tombstone"
        constraints = [
            models.UniqueConstraint(
                fields=["cqrs_id", "instance_pk"], name="messaging_cqrs_tomb_uq"
            )
        ]

    def __str__(self) -> str:
        return f"deleted {self.cqrs_id} pk={self.instance_pk}"
