"""How a master's change travels: the one place that chooses the publish mode.

The signal handlers only say that an instance was saved (:func:`saved`) or deleted
(:func:`deleted`); the message is built once, encoded once, and goes the way
``CQRS_PUBLISH_CONFIRMS`` says:

- ``"outbox"`` (default): inside a transaction the message is stored with the change
  (:func:`~.controller.producer.stage`, or by the save's own statement: see
  :mod:`.controller.staging`, which a save outside a transaction also takes) and handed after the commit to the transport without waiting
  (:func:`publish_staged`) through the publisher thread (:mod:`.controller.publisher`), which
  deletes the rows the broker confirmed. A message that was not
  stored (``cqrs_sync``, bulk calls in autocommit) travels as in ``"each"``.
- ``"each"``: after the commit, published and its confirm awaited; stored on failure.
- ``"pipelined"``: after the commit, handed to the transport's publisher thread; what it does
  not get confirmed is stored.

A transport that is not ``pipelined`` publishes every message as in ``"each"``.
:func:`wait_for_confirms` waits until the publisher thread has everything confirmed or stored.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from django_messaging.core import metrics
from django_messaging.core import precommit as core_precommit
from django_messaging.core.suppression import is_suppressed
from django_messaging.cqrs.conf import master_setting
from django_messaging.cqrs.controller import precommit, producer, publisher, staging
from django_messaging.cqrs.controller.publisher import wait_for_confirms as wait_for_confirms
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.payloads import delete_payload, save_payload
from django_messaging.cqrs.transport import current_transport

logger = logging.getLogger(__name__)

#: The instance's pending commit hook, to tell whether a rollback discarded it.
COMMIT_HOOK = "_cqrs_commit_hook"
#: The message an instance stored in the current transaction, rewritten by later saves.
OUTBOX = "_cqrs_outbox"


def mode() -> str:
    return master_setting("PUBLISH_CONFIRMS")


def produces(instance: Any) -> bool:
    return bool(instance.CQRS_PRODUCE) and not is_suppressed(instance.CQRS_ID)


def saved(
    instance: Any,
    using: str,
    *,
    update_fields: Any = None,
    sync: bool = False,
    queue: str | None = None,
) -> None:
    """``instance`` was saved (or is to be re-sent as a SYNC)."""
    staged_id = instance.__dict__.pop(staging.STAGED_ID, None)
    in_transaction = transaction.get_connection(using).in_atomic_block
    if staged_id is not None:
        if not in_transaction:
            _publish_stored_save(instance, using, staged_id)
        elif produces(instance) and instance.is_sync_instance():
            _stage_save(instance, using, queue, staged_id)
        else:
            producer.discard(staged_id, using)
        return
    if not produces(instance):
        return
    if update_fields and "cqrs_revision" not in update_fields:
        return
    if not instance.is_sync_instance():
        return
    if not sync and in_transaction and mode() == "outbox":
        _stage_save(instance, using, queue)
        return
    if sync or not in_transaction or instance.is_initial_cqrs_save:
        previous = instance.get_tracked_fields_data()
        _on_commit(instance, lambda: _send_save(instance, using, sync, queue, previous), using)


def deleted(instance: Any, using: str) -> None:
    """``instance``'s row was deleted."""
    if not produces(instance) or not instance.is_sync_instance():
        return
    payload = delete_payload(instance)
    if mode() == "outbox" and transaction.get_connection(using).in_atomic_block:
        hook = precommit.StagedMessage([payload], lambda stored: _publish_at_commit(stored, using))
        core_precommit.defer(hook, using)
        return
    transaction.on_commit(lambda: publish(payload, using), using=using)


def _on_commit(instance: Any, hook: Any, using: str) -> None:
    instance.__dict__[COMMIT_HOOK] = hook
    transaction.on_commit(hook, using=using)


def commit_hook_discarded(instance: Any, using: str) -> bool:
    """True when the hook that publishes ``instance`` was registered in this process and a
    rollback (of a savepoint or of the whole transaction) has discarded it since."""
    hook = instance.__dict__.get(COMMIT_HOOK)
    if hook is None:
        return False
    pending = transaction.get_connection(using).run_on_commit
    return not any(entry[1] is hook for entry in pending)


def forget_staged(instance: Any) -> None:
    """Its earlier saves in this transaction were rolled back: nothing of theirs is stored."""
    instance.__dict__.pop(OUTBOX, None)


def _stage_save(instance: Any, using: str, queue: str | None, staged_id: int | None = None) -> None:
    """Store the message in the transaction; publish it after the commit.

    The first save of the instance in the transaction registers the hook that publishes it
    after the commit (a :class:`~.controller.precommit.StagedMessage`: its row is written just
    before the commit, with the rows of the block's other messages) unless its own statement
    stored the row already (``staged_id``, a row without a body, see
    :mod:`.controller.staging`); later saves in the same transaction replace the message (and
    rewrite a row already stored), so it carries the last state. A serializer that fails here
    fails the save (and its transaction): nothing goes unsent.
    """
    holder: list[TransportPayload] | None = instance.__dict__.get(OUTBOX)
    initial = instance.is_initial_cqrs_save or holder is None
    try:
        payload = save_payload(
            instance, using, False, queue, instance.get_tracked_fields_data(), strict=True
        )
    except Exception:
        if staged_id is not None:  # a caller that goes on and commits sends nothing
            producer.discard(staged_id, using)
        raise
    if payload is None:
        if staged_id is not None:
            producer.discard(staged_id, using)
        return
    if not initial:
        assert holder is not None
        payload.outbox_id = holder[0].outbox_id
        if payload.outbox_id is not None:
            producer.stage(payload, using)
        holder[0] = payload
        return
    if staged_id is not None:
        payload.outbox_id, payload.origin_db = staged_id, using
    holder = [payload]
    instance.__dict__[OUTBOX] = holder

    def publish_at_commit(stored: TransportPayload) -> None:
        instance.reset_cqrs_saves_count()
        instance.__dict__.pop(OUTBOX, None)
        instance.__dict__.pop(COMMIT_HOOK, None)
        _publish_at_commit(_as_committed(instance, using, stored), using)

    hook = precommit.StagedMessage(holder, publish_at_commit)
    instance.__dict__[COMMIT_HOOK] = hook
    core_precommit.defer(hook, using)


def _publish_at_commit(payload: TransportPayload, using: str) -> None:
    if payload.outbox_id is None:
        # Not stored: its hook ran without the connection's commit (a test case's
        # transaction, run by a test helper). Sent as a message that was not stored.
        publish(payload, using)
        return
    publish_staged(payload, using)


def _as_committed(instance: Any, using: str, stored: TransportPayload) -> TransportPayload:
    """A ``CQRS_SERIALIZER`` reads related rows, which the transaction may have changed after
    the instance's last save: serialize it again as committed (the stored row follows)."""
    if not type(instance).CQRS_SERIALIZER:
        return stored
    fresh = save_payload(instance, using, False, stored.queue, stored.previous_data)
    if fresh is None or fresh.instance_data == stored.instance_data:
        return stored
    fresh.outbox_id = stored.outbox_id
    if fresh.outbox_id is not None:
        producer.stage(fresh, using)
    return fresh


def _publish_stored_save(instance: Any, using: str, staged_id: int) -> None:
    """After a save whose own statement stored the message row (see controller.staging)."""
    payload = None
    if produces(instance) and instance.is_sync_instance():
        instance.reset_cqrs_saves_count()
        try:
            payload = save_payload(
                instance, using, False, None, instance.get_tracked_fields_data(), strict=True
            )
        except Exception:
            # The change is committed and its message row stays: it is built again from the
            # row once CQRS_OUTBOX_GRACE has passed (cqrs_pending, or the next publish).
            logger.exception(
                "cqrs_id=%s pk=%s: serialization failed; the message stays stored",
                instance.CQRS_ID,
                instance.pk,
            )
            return
    if payload is None:
        producer.discard(staged_id, using)
        return
    payload.outbox_id = staged_id
    publish_staged(payload, using)


def _send_save(
    instance: Any, using: str, sync: bool, queue: str | None, previous: dict | None
) -> None:
    instance.reset_cqrs_saves_count()
    instance.__dict__.pop(COMMIT_HOOK, None)
    try:
        payload = save_payload(instance, using, sync, queue, previous, strict=not sync)
    except Exception as exc:
        producer.store_unbuilt(instance, using, exc)
        return
    if payload is not None:
        publish(payload, using)


def publish_staged(payload: TransportPayload, using: str) -> None:
    """After the commit: publish a stored message; its row goes once the broker confirms it."""
    payload.origin_db = using
    transport = current_transport()
    if getattr(transport, "pipelined", False):
        publisher.submit(payload)  # its thread deletes the rows of what the broker confirmed
        return
    try:
        transport.produce(payload)
    except Exception as exc:
        producer.failed([payload], exc)
        return
    producer.confirmed([payload])
    producer.delete_confirmed()
    if producer.maybe_pending(using):
        producer.flush_pending(using, due_only=True)


def publish(payload: TransportPayload, using: str = "default") -> bool:
    """Publish a message that was not stored; on failure store it. True when it was published
    (or handed to the transport's publisher thread) now."""
    payload.origin_db = using
    if payload.outbox_id is not None:
        publish_staged(payload, using)
        return True
    transport = current_transport()
    if mode() == "pipelined" and getattr(transport, "pipelined", False):
        publisher.submit(payload)
        return True
    try:
        transport.produce(payload)
    except Exception as exc:
        producer.store(payload, using, exc)
        return False
    metrics.produced("cqrs", payload.cqrs_id)
    if producer.maybe_pending(using):
        producer.flush_pending(using, due_only=True)
    return True
