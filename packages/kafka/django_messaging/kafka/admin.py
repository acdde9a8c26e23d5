from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from django_messaging.kafka.models import ProcessedMessage


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(admin.ModelAdmin):
    """Read-only: rows are written by idempotent consumers and removed by kafka_inbox_purge."""

    list_display = ("message_id", "consumer", "processed_at")
    list_filter = ("consumer",)
    search_fields = ("=message_id",)
    date_hierarchy = "processed_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
