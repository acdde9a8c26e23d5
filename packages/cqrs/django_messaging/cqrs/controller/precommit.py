"""The messages of a ``transaction.atomic()`` block, stored together just before its commit.

In the default mode (``CQRS_PUBLISH_CONFIRMS = "outbox"``) a save inside a transaction does not
write its message row at once (a create before any other commit hook of the transaction
carries it in its own statement instead, see :mod:`.staging`): the message rides on the commit hook that publishes it
(:class:`StagedMessage`, a :class:`django_messaging.core.precommit.BeforeCommit`). Just before
the transaction's ``COMMIT``, core's pre-commit writes the messages of the hooks no rollback
discarded, in the order they were registered, as one multi-row ``INSERT`` (:meth:`StagedMessage.
write`). The rows commit with the change or not at all: a process killed after the commit leaves
them to the relay, as before.

On psycopg 3 with client-side binding (Django's default) the ``INSERT`` and the ``COMMIT`` go as
one statement string when nothing else is written after it, so the block costs no round trip
more than a block without messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils import timezone

from django_messaging.core import precommit
from django_messaging.cqrs.controller import pending_row
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.payloads import stored_trace


class StagedMessage(precommit.BeforeCommit):
    """A commit hook that carries the message it publishes.

    ``holder[0]`` is the message (a later save of the same instance in the transaction replaces
    it); ``publish(payload)`` runs after the commit. A message whose row was not written before
    the commit (hooks run by a test helper inside a test case's transaction) has no
    ``outbox_id``; ``publish`` is expected to send it as a message that was not stored.
    """

    __slots__ = ("holder", "publish")

    def __init__(
        self, holder: list[TransportPayload], publish: Callable[[TransportPayload], None]
    ) -> None:
        self.holder = holder
        self.publish = publish

    def __call__(self) -> None:
        self.publish(self.holder[0])

    @classmethod
    def write(cls, connection: Any, hooks: list[Any], *, final: bool) -> None:
        """Store the messages not stored yet (one ``INSERT``), committing too where it can."""
        payloads = [h.holder[0] for h in hooks if h.holder[0].outbox_id is None]
        if payloads:
            _insert(connection, payloads, final=final)


def _insert(connection: Any, payloads: list[TransportPayload], *, final: bool) -> None:
    from django_messaging.cqrs.models import PendingMessage

    ops = connection.ops
    created = ops.adapt_datetimefield_value(timezone.now())
    params: list[Any] = []
    for payload in payloads:
        params += (
            created,
            payload.cqrs_id,
            payload.signal_type.value,
            str(payload.pk),
            payload.queue or "",
            payload.body().decode(),
            stored_trace(payload),
        )
    table = ops.quote_name(PendingMessage._meta.db_table)
    columns = pending_row.column_list(ops.quote_name)
    insert = f"INSERT INTO {table} ({columns}) VALUES "
    with connection.cursor() as cursor:
        if connection.features.can_return_rows_from_bulk_insert:
            statement = f"{insert}{', '.join([pending_row.NEW_ROW] * len(payloads))} RETURNING {ops.quote_name('id')}"
            if final and precommit.can_carry_commit(cursor):
                # One round trip: psycopg sees the transaction ended and its commit does nothing.
                statement += "; COMMIT"
            cursor.execute(statement, params)
            ids = [row[0] for row in cursor.fetchall()]
        else:
            ids = []
            width = len(params) // len(payloads)
            for start in range(0, len(params), width):
                cursor.execute(f"{insert}{pending_row.NEW_ROW}", params[start : start + width])
                ids.append(cursor.lastrowid)
    for payload, outbox_id in zip(payloads, ids, strict=True):
        payload.outbox_id = outbox_id
        payload.origin_db = connection.alias
