"""Master side signal handlers: a saved or deleted master instance becomes a message on commit.

``post_bulk_create`` and ``post_update`` are sent by ``Model.cqrs.bulk_create`` and
``Model.cqrs.bulk_update`` (Django has no signals for those). Every handler honours
:func:`django_messaging.core.suppress`: inside ``with suppress():`` (or ``suppress([CQRS_ID])``)
nothing is published, while revisions still count.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import router, transaction
from django.db.models import signals
from django.db.models.expressions import BaseExpression
from django.dispatch import Signal
from django.utils import timezone

from django_messaging.core.suppression import is_suppressed
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.controller import producer, staging
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.utils import get_correlation_id, get_message_expiration_dt

logger = logging.getLogger(__name__)

#: Sent after ``Model.cqrs.bulk_create``: ``sender=model, instances=[...], using=alias``.
post_bulk_create = Signal()
#: Sent after ``Model.cqrs.bulk_update``: ``sender=model, instances=[...], using=alias``.
post_update = Signal()


def _produces(instance: Any) -> bool:
    return bool(instance.CQRS_PRODUCE) and not is_suppressed(instance.CQRS_ID)


class MasterSignals:
    """Signal registry and handlers for master models."""

    @classmethod
    def register_model(cls, model_cls: Any) -> None:
        """Connect the handlers for ``model_cls`` and its proxies only (a proxy defined later is
        connected when Django prepares it), so other models keep Django's fast delete."""
        model_cls._cqrs_master_registered = True
        uid = f"django_messaging.cqrs.{model_cls._meta.label_lower}"
        signals.post_save.connect(cls.post_save, sender=model_cls, dispatch_uid=f"{uid}.save")
        signals.pre_delete.connect(
            cls.pre_delete, sender=model_cls, dispatch_uid=f"{uid}.pre_delete"
        )
        signals.post_delete.connect(cls.post_delete, sender=model_cls, dispatch_uid=f"{uid}.delete")
        post_bulk_create.connect(
            cls.post_bulk_create, sender=model_cls, dispatch_uid=f"{uid}.bulk_create"
        )
        post_update.connect(cls.post_bulk_update, sender=model_cls, dispatch_uid=f"{uid}.update")
        for subclass in model_cls.__subclasses__():
            if subclass._meta.proxy:
                cls.register_model(subclass)

    @classmethod
    def post_save(cls, sender: Any, **kwargs: Any) -> None:
        instance = kwargs["instance"]
        staged_id = instance.__dict__.pop(staging.STAGED_ID, None)
        if staged_id is not None:
            _publish_stored_save(instance, kwargs["using"], staged_id)
            return
        if not _produces(instance):
            return
        update_fields = kwargs.get("update_fields")
        if update_fields and "cqrs_revision" not in update_fields:
            return
        if not instance.is_sync_instance():
            return
        using = kwargs.get("using") or router.db_for_write(sender, instance=instance)
        sync = kwargs.get("sync", False)
        queue = kwargs.get("queue")
        connection = transaction.get_connection(using)
        if not sync and connection.in_atomic_block and producer.outbox_mode():
            _stage_save(instance, using, queue)
            return
        if sync or not connection.in_atomic_block or instance.is_initial_cqrs_save:
            previous = instance.get_tracked_fields_data()
            _on_commit(
                instance, lambda: _produce_save(instance, using, sync, queue, previous), using
            )

    @classmethod
    def pre_delete(cls, sender: Any, **kwargs: Any) -> None:
        """An instance saved but not yet serialized still holds ``F('cqrs_revision') + 1``:
        read the revision while the row is there, for the DELETE to carry it."""
        instance = kwargs["instance"]
        if isinstance(instance.cqrs_revision, BaseExpression) and _produces(instance):
            instance.refresh_from_db(fields=["cqrs_revision"], using=kwargs.get("using"))

    @classmethod
    def post_delete(cls, sender: Any, **kwargs: Any) -> None:
        instance = kwargs["instance"]
        if not _produces(instance) or not instance.is_sync_instance():
            return
        using = kwargs.get("using") or router.db_for_write(sender, instance=instance)
        instance_data: dict[str, Any] = {
            "id": instance.pk,
            "cqrs_revision": instance.cqrs_revision + 1,
            "cqrs_updated": str(timezone.now()),
        }
        custom = instance.get_custom_cqrs_delete_data()
        if custom:
            instance_data["custom"] = custom
        from django_messaging.cqrs.serialization import to_wire

        instance_data = to_wire(instance_data)
        pk = instance.pk
        meta = instance.get_cqrs_meta(instance_data=instance_data, signal_type=SignalType.DELETE)
        payload = TransportPayload(
            SignalType.DELETE,
            sender.CQRS_ID,
            instance_data,
            pk,
            correlation_id=get_correlation_id(SignalType.DELETE, sender.CQRS_ID, pk, None),
            expires=get_message_expiration_dt(),
            meta=meta,
        )
        if producer.outbox_mode() and transaction.get_connection(using).in_atomic_block:
            producer.stage(payload, using)
            transaction.on_commit(lambda: producer.publish_staged(payload, using), using=using)
            return
        transaction.on_commit(lambda: producer.produce(payload, using=using), using=using)

    @classmethod
    def post_bulk_create(cls, sender: Any, **kwargs: Any) -> None:
        for instance in kwargs["instances"]:
            cls.post_save(sender, instance=instance, using=kwargs.get("using"), created=True)

    @classmethod
    def post_bulk_update(cls, sender: Any, **kwargs: Any) -> None:
        for instance in kwargs["instances"]:
            cls.post_save(sender, instance=instance, using=kwargs.get("using"), created=False)


def _connect_proxy(sender: Any, **kwargs: Any) -> None:
    """A proxy of a master model sends signals as itself: connect the handlers for it too."""
    if sender._meta.proxy and getattr(sender, "_cqrs_master_registered", False):
        MasterSignals.register_model(sender)


signals.class_prepared.connect(_connect_proxy, dispatch_uid="django_messaging.cqrs.proxies")


def _stage_save(instance: Any, using: str, queue: str | None) -> None:
    """Store the message in the transaction; publish it after the commit.

    The first save of the instance in the transaction stores the row and registers the publish;
    later saves in the same transaction rewrite the row, so the message carries the last state.
    A serializer that fails here fails the save (and its transaction): nothing goes unsent.
    """
    holder: list[TransportPayload] | None = instance.__dict__.get("_cqrs_outbox")
    initial = instance.is_initial_cqrs_save or holder is None
    payload = build_save_payload(
        instance, using, False, queue, instance.get_tracked_fields_data(), strict=True
    )
    if payload is None:
        return
    if not initial:
        assert holder is not None
        payload.outbox_id = holder[0].outbox_id
        producer.stage(payload, using)
        holder[0] = payload
        return
    producer.stage(payload, using)
    holder = [payload]
    instance.__dict__["_cqrs_outbox"] = holder

    def publish() -> None:
        instance.reset_cqrs_saves_count()
        instance.__dict__.pop("_cqrs_outbox", None)
        instance.__dict__.pop(COMMIT_HOOK, None)
        producer.publish_staged(_as_committed(instance, using, holder[0]), using)

    _on_commit(instance, publish, using)


#: The instance's pending commit hook, to tell whether a rollback discarded it.
COMMIT_HOOK = "_cqrs_commit_hook"


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


def _as_committed(instance: Any, using: str, stored: TransportPayload) -> TransportPayload:
    """A ``CQRS_SERIALIZER`` reads related rows, which the transaction may have changed after
    the instance's last save: serialize it again as committed (the stored row follows)."""
    if not type(instance).CQRS_SERIALIZER:
        return stored
    fresh = build_save_payload(instance, using, False, stored.queue, stored.previous_data)
    if fresh is None or fresh.instance_data == stored.instance_data:
        return stored
    fresh.outbox_id = stored.outbox_id
    producer.stage(fresh, using)
    return fresh


def _publish_stored_save(instance: Any, using: str, staged_id: int) -> None:
    """After a save whose own statement stored the message row (see controller.staging)."""
    payload = None
    if _produces(instance) and instance.is_sync_instance():
        instance.reset_cqrs_saves_count()
        try:
            payload = build_save_payload(
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
    producer.publish_staged(payload, using)


def _produce_save(
    instance: Any, using: str, sync: bool, queue: str | None, previous: dict | None
) -> None:
    instance.reset_cqrs_saves_count()
    instance.__dict__.pop(COMMIT_HOOK, None)
    try:
        payload = build_save_payload(instance, using, sync, queue, previous, strict=not sync)
    except Exception as exc:
        producer.store_unbuilt(instance, using, exc)
        return
    if payload is not None:
        producer.produce(payload, using=using)


def build_save_payload(
    instance: Any,
    using: str,
    sync: bool,
    queue: str | None,
    previous: dict | None,
    *,
    strict: bool = False,
) -> TransportPayload | None:
    """The SAVE (or SYNC) message of ``instance``; None when its row is gone. A failing
    serializer raises with ``strict``, otherwise it is logged and nothing is sent."""
    model = type(instance)
    try:
        data = instance.to_cqrs_dict(using=using, sync=sync)
    except model.DoesNotExist:
        logger.error(
            "cqrs_id=%s pk=%s: the row vanished before it could be serialized; not published",
            model.CQRS_ID,
            instance.pk,
        )
        return None
    except Exception:
        if strict:
            raise
        logger.exception(
            "cqrs_id=%s pk=%s: serialization failed; not published", model.CQRS_ID, instance.pk
        )
        return None
    signal_type = SignalType.SYNC if sync else SignalType.SAVE
    meta = instance.get_cqrs_meta(
        instance_data=data, previous_data=previous, signal_type=signal_type
    )
    payload = TransportPayload(
        signal_type,
        model.CQRS_ID,
        data,
        instance.pk,
        queue=queue,
        previous_data=previous,
        correlation_id=get_correlation_id(signal_type, model.CQRS_ID, instance.pk, queue),
        expires=get_message_expiration_dt(),
        meta=meta,
    )
    return payload
