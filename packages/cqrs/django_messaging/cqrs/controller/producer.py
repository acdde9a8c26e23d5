"""Publishing from the master side, with store-and-forward when the broker does not confirm.

:func:`produce` hands the payload to the configured transport. When the transport raises (broker
down, no confirm), the message is written to ``messaging_cqrs_pendingmessage`` in the database
the change was written to, and sent later, oldest first: after the next successful publish of
the process, by ``cqrs_pending flush`` or by the ``cqrs_pending run`` relay.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import DatabaseError, connections, transaction

from django_messaging.core.serializers import get_serializer
from django_messaging.cqrs.conf import master_setting
from django_messaging.cqrs.dataclasses import TransportPayload

logger = logging.getLogger(__name__)

#: Aliases whose pending table may hold rows (unknown at start: checked once per process).
_maybe_pending: dict[str, bool] = {}
_flush_lock = threading.Lock()


def _transport() -> Any:
    from django_messaging.cqrs.transport import current_transport

    return current_transport()


def produce(payload: TransportPayload, using: str = "default") -> bool:
    """Publish ``payload``; on failure store it durably. True when it was published now."""
    payload.origin_db = using
    try:
        _transport().produce(payload)
    except Exception as exc:
        store(payload, using, exc)
        return False
    if _maybe_pending.get(using, True):
        flush_pending(using)
    return True


def store(payload: TransportPayload, using: str, exc: BaseException) -> None:
    from django_messaging.cqrs.models import PendingMessage

    body = get_serializer("json").dumps(payload.to_dict()).decode()
    logger.warning(
        "cqrs_id=%s pk=%s %s: not published (%s: %s); stored to send later",
        payload.cqrs_id,
        payload.pk,
        payload.signal_type.value,
        type(exc).__name__,
        exc,
    )
    try:
        PendingMessage.objects.using(using).create(
            cqrs_id=payload.cqrs_id,
            signal_type=payload.signal_type.value,
            instance_pk=str(payload.pk),
            queue=payload.queue or "",
            body=body,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
        )
    except DatabaseError:
        logger.exception(
            "cqrs_id=%s pk=%s: could not store the unpublished message either: %s",
            payload.cqrs_id,
            payload.pk,
            body,
        )
        raise
    _maybe_pending[using] = True


def flush_pending(using: str = "default", limit: int | None = None) -> int:
    """Publish stored messages oldest first; stop at the first failure. Returns how many went."""
    from django_messaging.cqrs.models import PendingMessage

    if not _flush_lock.acquire(blocking=False):
        return 0
    sent = 0
    try:
        batch = limit or master_setting("CQRS_PENDING_FLUSH_BATCH")
        serializer = get_serializer("json")
        while True:
            try:
                with transaction.atomic(using=using):
                    qs = PendingMessage.objects.using(using).order_by("id")
                    if connections[using].features.has_select_for_update_skip_locked:
                        qs = qs.select_for_update(skip_locked=True)
                    rows = list(qs[:batch])
                    if not rows:
                        _maybe_pending[using] = False
                        return sent
                    done: list[int] = []
                    for row in rows:
                        payload = TransportPayload.from_message(
                            serializer.loads(row.body), queue=row.queue or None
                        )
                        try:
                            _transport().produce(payload)
                        except Exception as exc:
                            PendingMessage.objects.using(using).filter(pk=row.pk).update(
                                attempts=row.attempts + 1,
                                last_error=f"{type(exc).__name__}: {exc}"[:2000],
                            )
                            PendingMessage.objects.using(using).filter(pk__in=done).delete()
                            sent += len(done)
                            return sent
                        done.append(row.pk)
                    PendingMessage.objects.using(using).filter(pk__in=done).delete()
                    sent += len(done)
                    if limit:
                        return sent
            except DatabaseError:
                logger.exception("could not read pending CQRS messages on %r", using)
                return sent
    finally:
        if sent:
            logger.info("published %d stored CQRS message(s) from %r", sent, using)
        _flush_lock.release()


def pending_count(using: str = "default") -> int:
    from django_messaging.cqrs.models import PendingMessage

    try:
        return PendingMessage.objects.using(using).count()
    except DatabaseError:
        return 0
