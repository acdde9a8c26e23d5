"""The messages of a ``transaction.atomic()`` block, stored together just before its commit.

In the default mode (``CQRS_PUBLISH_CONFIRMS = "outbox"``) a save inside a transaction does not
write its message row at once: the message rides on the commit hook that publishes it
(:class:`StagedMessage`, registered with ``transaction.on_commit``). Django keeps that list of
hooks exact: a rolled-back savepoint drops the hooks registered inside it, a rolled-back
transaction drops them all. Just before the transaction's ``COMMIT``, the connection's
``commit()`` (wrapped once per connection by :func:`install`) writes the messages of the hooks
still there, in the order they were registered, as one multi-row ``INSERT`` (:func:`write`).
The rows commit with the change or not at all: a process killed after the commit leaves them
to the relay, as before.

On psycopg 3 with client-side binding (Django's default) the ``INSERT`` and the ``COMMIT`` go as
one statement string, so the block costs no round trip more than a block without messages.
When the ``INSERT`` fails, nothing is committed: Django's ``atomic`` rolls the transaction back
and raises, and the caller sees the error, as for a failing statement of its own.

Django has no hook before a commit; wrapping ``commit`` of the connection object is the one
place every commit of an ``atomic`` block passes through (``Atomic.__exit__`` and
``transaction.commit()`` call it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.utils import timezone

from django_messaging.cqrs.dataclasses import TransportPayload

logger = logging.getLogger(__name__)

#: Marks a connection object whose ``commit`` writes the staged messages first.
_INSTALLED = "_cqrs_precommit"
_COLUMNS = (
    "created",
    "cqrs_id",
    "signal_type",
    "instance_pk",
    "queue",
    "body",
    "attempts",
    "last_error",
)
_ROW = "(%s, %s, %s, %s, %s, %s, 0, '')"

try:
    import psycopg
except ImportError:  # psycopg2, or no PostgreSQL driver at all
    psycopg = None  # type: ignore[assignment]


class StagedMessage:
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


def install(using: str) -> None:
    """Make the commit of connection ``using`` (this thread's) write the staged messages first."""
    connection = connections[using]
    if connection.__dict__.get(_INSTALLED):
        return
    original = connection.commit

    def commit() -> None:
        if not connection.in_atomic_block:
            write(connection)
        original()

    connection.commit = commit  # type: ignore[method-assign]
    connection.__dict__[_INSTALLED] = True


def staged(connection: Any) -> list[TransportPayload]:
    """The messages still to store: those of the hooks no rollback discarded, in order."""
    pending = []
    for entry in connection.run_on_commit:
        hook = entry[1]
        if isinstance(hook, StagedMessage) and hook.holder[0].outbox_id is None:
            pending.append(hook.holder[0])
    return pending


def write(connection: Any) -> None:
    """Store the transaction's staged messages (one ``INSERT``), committing too where it can."""
    payloads = staged(connection)
    if not payloads:
        return
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
        )
    table = ops.quote_name(PendingMessage._meta.db_table)
    columns = ", ".join(ops.quote_name(c) for c in _COLUMNS)
    insert = f"INSERT INTO {table} ({columns}) VALUES "
    features = connection.features
    with connection.cursor() as cursor:
        if features.can_return_rows_from_bulk_insert:
            statement = (
                f"{insert}{', '.join([_ROW] * len(payloads))} RETURNING {ops.quote_name('id')}"
            )
            if _commits_with(cursor):
                # One round trip: psycopg sees the transaction ended and its commit does nothing.
                statement += "; COMMIT"
            cursor.execute(statement, params)
            ids = [row[0] for row in cursor.fetchall()]
        else:
            ids = []
            width = len(params) // len(payloads)
            for start in range(0, len(params), width):
                cursor.execute(f"{insert}{_ROW}", params[start : start + width])
                ids.append(cursor.lastrowid)
    for payload, outbox_id in zip(payloads, ids, strict=True):
        payload.outbox_id = outbox_id
        payload.origin_db = connection.alias


def _commits_with(cursor: Any) -> bool:
    """True when the driver cursor binds parameters itself (several statements in one string)."""
    return psycopg is not None and isinstance(getattr(cursor, "cursor", None), psycopg.ClientCursor)
