"""Read-only admin pages for stored events, snapshots, positions, sequences and DCB events.

Events are immutable facts: the admin shows them but neither edits nor deletes them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from django_messaging.eventstore.dcb_models import DCBEventRecord, DCBSequence
from django_messaging.eventstore.models import (
    AggregateRecord,
    NotificationSequence,
    NotificationTrackingRecord,
    StoredEventRecord,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StoredEventRecord)
class StoredEventRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "application_name",
        "notification_id",
        "topic",
        "originator_id",
        "originator_version",
    )
    list_filter = ("application_name",)
    search_fields = ("originator_id", "topic")
    ordering = ("application_name", "-notification_id")
    exclude = ("state",)
    readonly_fields = ("state_preview",)

    @admin.display(description="state")
    def state_preview(self, obj: StoredEventRecord) -> str:
        state = bytes(obj.state)
        return f"{len(state)} bytes: {state[:500]!r}"


@admin.register(AggregateRecord)
class AggregateRecordAdmin(ReadOnlyAdmin):
    list_display = ("application_name", "purpose", "originator_id", "originator_version", "topic")
    list_filter = ("application_name", "purpose")
    search_fields = ("originator_id",)
    exclude = ("state",)


@admin.register(NotificationTrackingRecord)
class NotificationTrackingRecordAdmin(ReadOnlyAdmin):
    list_display = ("application_name", "upstream_application_name", "notification_id")
    list_filter = ("application_name",)


@admin.register(NotificationSequence)
class NotificationSequenceAdmin(ReadOnlyAdmin):
    list_display = ("application_name", "last_id")


@admin.register(DCBEventRecord)
class DCBEventRecordAdmin(ReadOnlyAdmin):
    list_display = ("application_name", "position", "type", "tags")
    list_filter = ("application_name",)
    search_fields = ("type",)
    ordering = ("application_name", "-position")
    exclude = ("data",)
    readonly_fields = ("data_preview",)

    @admin.display(description="data")
    def data_preview(self, obj: DCBEventRecord) -> str:
        data = bytes(obj.data)
        return f"{len(data)} bytes: {data[:500]!r}"


@admin.register(DCBSequence)
class DCBSequenceAdmin(ReadOnlyAdmin):
    list_display = ("application_name", "last_position")
