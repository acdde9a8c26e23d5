"""``Payload``: what a subscriber callback receives.

    def callback(payload: Payload) -> None:
        if not valid(payload.body):
            payload.nack()          # dead-letter it, no database work
            return
        with transaction.atomic():
            persist(payload.body)
            payload.save()          # records the message id in this transaction

The subscriber acknowledges the message after the callback returned and the transaction that
ran ``save()`` committed; a rollback leaves it unacknowledged, so it is retried.
"""

from __future__ import annotations

from typing import Any

import stomp
from django.db import router, transaction

from django_messaging.outbox.choices import StatusChoice


def _ack(connection: Any, ack_id: str, subscription: str | None) -> None:
    if isinstance(connection, stomp.StompConnection11):  # STOMP 1.1 names the subscription
        connection.ack(ack_id, subscription)
    else:
        connection.ack(ack_id)


def _nack(connection: Any, ack_id: str, subscription: str | None) -> None:
    if isinstance(connection, stomp.StompConnection11):
        connection.nack(ack_id, subscription, requeue="false")
    else:
        connection.nack(ack_id, requeue="false")


class Payload:
    def __init__(
        self, connection: Any, body: Any, headers: dict[str, Any], message: Any = None
    ) -> None:
        self.connection = connection
        self.body = body
        self.headers = headers
        self.message = message  # the unsaved Received row
        self.saved = False
        self.committed = False
        self.acked = False
        self.nacked = False
        #: Set by the subscriber inside a batch: the row is written by one INSERT for the
        #: whole batch, just before its commit, if the savepoint around ``save()`` survived.
        self.insert_later = False
        self._hook = self._on_commit
        #: The message's ``dop-correlation-id`` (a new uuid4 when it has none), set by the
        #: subscriber before the callback runs; also the current id while it runs.
        self.correlation_id: str | None = None

    @property
    def ack_id(self) -> str:
        return str(self.headers.get("ack") or self.headers.get("message-id"))

    @property
    def subscription(self) -> str | None:
        return self.headers.get("subscription")

    def save(self) -> None:
        """Record the message as processed, inside the caller's transaction (if any)."""
        if self.saved:
            return
        if self.message is None:
            raise RuntimeError("this payload has no Received row to save")
        self.message.status = StatusChoice.SUCCEEDED
        if not self.insert_later:
            self.message.save(force_insert=True)
        self.saved = True
        using = router.db_for_write(type(self.message))
        transaction.on_commit(self._hook, using=using)

    def pending_commit(self, using: str) -> bool:
        """Whether ``save()`` is still part of the open transaction (no savepoint around it
        was rolled back since): Django drops a rolled-back savepoint's commit hooks."""
        hooks = transaction.get_connection(using).run_on_commit
        return self.saved and any(hook[1] is self._hook for hook in hooks)

    def _on_commit(self) -> None:
        self.committed = True

    def ack(self) -> None:
        """Acknowledge (remove from the queue). Called by the subscriber after ``save()``."""
        if self.acked or self.nacked:
            return
        _ack(self.connection, self.ack_id, self.subscription)
        self.acked = True

    def nack(self) -> None:
        """Reject: the broker moves the message to the dead-letter queue. No database work."""
        if self.acked or self.nacked:
            return
        _nack(self.connection, self.ack_id, self.subscription)
        self.nacked = True
