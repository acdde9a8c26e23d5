# mypy: disable-error-code="var-annotated"
"""Rows the package keeps: messages waiting to be published, and deletes replicas remember."""

from __future__ import annotations

from django.db import models


class PendingMessage(models.Model):
    """A master message stored with its change, until the broker confirms it.

    Rows that stay (refused, unconfirmed, or left by a process that died) are re-sent, oldest
    first, by the next successful publish of a process, by ``manage.py cqrs_pending flush`` or
    by ``cqrs_pending run`` (a long-running relay).
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
