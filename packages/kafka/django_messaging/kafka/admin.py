from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from django_messaging.kafka import kafka
from django_messaging.kafka.models import ProcessedMessage, WaitingMessage
from django_messaging.kafka.relations import resolve


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


@admin.register(WaitingMessage)
class WaitingMessageAdmin(admin.ModelAdmin):
    """Messages parked by the relations resolver; the action replays those whose relations
    exist now (each after the earlier waiting messages of its key)."""

    list_display = ("topic", "partition", "offset", "status", "consumer", "created_at")
    list_filter = ("status", "topic", "consumer")
    search_fields = ("=key_digest",)
    readonly_fields = [f.name for f in WaitingMessage._meta.fields]
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Replay the selected messages whose relations exist")
    def replay(self, request: HttpRequest, queryset: QuerySet[WaitingMessage]) -> None:
        ids = list(queryset.filter(status=WaitingMessage.WAITING).values_list("pk", flat=True))
        replayed = 0
        for key in sorted(set(queryset.values_list("consumer", flat=True))):
            if key not in kafka.consumers:
                self.message_user(request, f"{key} is not registered", messages.ERROR)
                continue
            consumer = kafka.consumers[key]()
            try:
                replayed += resolve(consumer, limit=len(ids) or 1, ids=ids)
            finally:
                consumer.stop()
        self.message_user(request, f"{replayed} of {len(ids)} waiting message(s) replayed")
