"""The message of a master instance's save or delete, built from the instance."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.utils import timezone

from django_messaging.core import tracing
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.serialization import to_wire
from django_messaging.cqrs.utils import get_correlation_id, get_message_expiration_dt

logger = logging.getLogger(__name__)


def stored_trace(payload: TransportPayload) -> str | None:
    """``payload``'s trace context as its ``PendingMessage.trace_context`` column holds it."""
    return json.dumps(payload.trace, separators=(",", ":")) if payload.trace else None


def loaded_trace(value: str | None) -> dict[str, str] | None:
    """The trace headers a ``trace_context`` column holds (``None``: none, or unreadable)."""
    if not value:
        return None
    try:
        loaded = json.loads(value)
    except ValueError:
        return None
    if not isinstance(loaded, dict):
        return None
    return {str(k): str(v) for k, v in loaded.items() if isinstance(v, str)} or None


def save_payload(
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
    if tracing.enabled:
        payload.trace = tracing.inject() or None
    return payload


def delete_payload(instance: Any) -> TransportPayload:
    """The DELETE message of ``instance`` (after its row went)."""
    model = type(instance)
    instance_data: dict[str, Any] = {
        "id": instance.pk,
        "cqrs_revision": instance.cqrs_revision + 1,
        "cqrs_updated": str(timezone.now()),
    }
    custom = instance.get_custom_cqrs_delete_data()
    if custom:
        instance_data["custom"] = custom
    instance_data = to_wire(instance_data)
    pk = instance.pk
    meta = instance.get_cqrs_meta(instance_data=instance_data, signal_type=SignalType.DELETE)
    payload = TransportPayload(
        SignalType.DELETE,
        model.CQRS_ID,
        instance_data,
        pk,
        correlation_id=get_correlation_id(SignalType.DELETE, model.CQRS_ID, pk, None),
        expires=get_message_expiration_dt(),
        meta=meta,
    )
    if tracing.enabled:
        payload.trace = tracing.inject() or None
    return payload
