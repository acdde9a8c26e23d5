"""Admin for the outbox and received tables: filters, search, and a re-send action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published, Received


@admin.register(Published)
class PublishedAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "transport",
        "destination",
        "key",
        "status",
        "retry",
        "added",
        "sent_at",
        "last_error",
    )
    list_filter = ("status", "transport", "destination", "added", "sent_at")
    search_fields = ("=id", "destination", "=key", "last_error")
    ordering = ("-added",)
    date_hierarchy = "added"
    readonly_fields = ("id", "added", "claimed_by", "claimed_until", "sent_at")
    actions = ["resend"]

    @admin.action(description="Re-send selected messages (schedule them again)")
    def resend(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = queryset.exclude(status=StatusChoice.SCHEDULE).update(
            status=StatusChoice.SCHEDULE,
            retry=0,
            available_at=timezone.now(),
            claimed_by=None,
            claimed_until=None,
            last_error="",
        )
        self.message_user(
            request, f"{count} message(s) scheduled to be sent again.", messages.SUCCESS
        )


@admin.register(Received)
class ReceivedAdmin(admin.ModelAdmin):
    list_display = ("msg_id", "queue", "status", "added")
    list_filter = ("status", "queue", "added")
    search_fields = ("=msg_id", "queue")
    ordering = ("-added",)
    date_hierarchy = "added"
