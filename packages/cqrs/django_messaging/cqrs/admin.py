"""Admin: a "synchronize via CQRS" action for master models, and the package's own rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet

from django_messaging.cqrs.management.utils import batch_qs
from django_messaging.cqrs.models import PendingMessage, Tombstone


class CQRSAdminMasterSyncMixin:
    """Adds the action "Synchronize selected … via CQRS" to a master model's admin."""

    def get_actions(self, request: Any) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        actions["sync_items"] = (
            type(self).sync_items,
            "sync_items",
            "Synchronize selected %(verbose_name_plural)s via CQRS",
        )
        return actions

    def _cqrs_sync_queryset(self, queryset: QuerySet) -> QuerySet:
        """Adjust the queryset before syncing (e.g. ``select_related``)."""
        return queryset

    def sync_items(self, request: Any, queryset: QuerySet) -> None:
        """Publish every selected row again as a SYNC message to all replicas."""
        synced = failed = 0
        for batch in batch_qs(self._cqrs_sync_queryset(queryset), 1000):
            for item in batch:
                if item.cqrs_sync():
                    synced += 1
                else:
                    failed += 1
        self.message_user(  # type: ignore[attr-defined]
            request,
            f"{synced} item(s) sent for synchronization."
            + (f" {failed} failed." if failed else ""),
            messages.WARNING if failed else messages.SUCCESS,
        )


@admin.register(PendingMessage)
class PendingMessageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created",
        "signal_type",
        "cqrs_id",
        "instance_pk",
        "queue",
        "attempts",
        "available_at",
        "claimed_by",
    )
    list_filter = ("cqrs_id", "signal_type")
    search_fields = ("instance_pk", "last_error")
    readonly_fields = [f.name for f in PendingMessage._meta.fields]


@admin.register(Tombstone)
class TombstoneAdmin(admin.ModelAdmin):
    list_display = ("cqrs_id", "instance_pk", "revision", "deleted_at", "created")
    list_filter = ("cqrs_id",)
    search_fields = ("instance_pk",)
    readonly_fields = [f.name for f in Tombstone._meta.fields]
