"""Small helpers of the master and replica sides."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import DatabaseError, router
from django.utils import timezone

from django_messaging.cqrs.conf import master_setting, replica_setting, settings
from django_messaging.cqrs.registries import ReplicaRegistry

logger = logging.getLogger(__name__)


def get_message_expiration_dt(ttl: int | None = ...) -> dt.datetime | None:  # type: ignore[assignment]
    """``now + CQRS_MESSAGE_TTL`` (or ``ttl``); None when messages never expire."""
    if ttl is ...:
        ttl = master_setting("MESSAGE_TTL")
    if ttl is None:
        return None
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl)  # an instant, whatever USE_TZ


def get_correlation_id(signal_type: Any, cqrs_id: str, instance_pk: Any, queue: str | None) -> Any:
    function = settings.imported("master", "correlation_function")
    if function is None:
        return None
    return function(signal_type, cqrs_id, instance_pk, queue)


def get_meta(instance: Any, **kwargs: Any) -> dict[str, Any]:
    function = settings.imported("master", "meta_function")
    if function is None:
        return {}
    return function(obj=instance, **kwargs)


def purge_tombstones() -> int:
    """Forget replica deletes older than ``CQRS_TOMBSTONE_TTL``; returns how many were removed."""
    from django_messaging.cqrs.models import Tombstone  # a model: needs the app registry

    ttl = replica_setting("TOMBSTONE_TTL")
    if not ttl:
        return 0
    cutoff = timezone.now() - dt.timedelta(seconds=ttl)
    removed = 0
    aliases = {
        router.db_for_write(m) for m in ReplicaRegistry.models.values() if hasattr(m, "_meta")
    }
    for alias in aliases:
        try:
            removed += Tombstone.objects.using(alias).filter(created__lt=cutoff).delete()[0]
        except DatabaseError:
            logger.exception("could not purge tombstones on %r", alias)
    return removed
