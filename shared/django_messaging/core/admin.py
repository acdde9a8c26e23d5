"""The admin's messaging status page, at ``admin/messaging_core/statussample/`` ("Messaging ›
Status" on the admin index): the page of the :class:`StatusSample` model shows the dashboard
of :mod:`django_messaging.core.dashboard` instead of a list of rows. Staff who may view status
samples see it (superusers always); nobody adds, changes or deletes a sample here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from django_messaging.core import dashboard, status
from django_messaging.core.models import StatusSample


@admin.register(StatusSample)
class StatusAdmin(admin.ModelAdmin):
    #: Seconds each status source may wait for its broker while the page is built.
    status_timeout = 2.0

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = status.collect(self.status_timeout)
        context = {
            **self.admin_site.each_context(request),
            "title": "Messaging status",
            "opts": self.model._meta,
            "report": report,
            "charts": dashboard.charts(),
            "links": dashboard.admin_links(self.admin_site),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/messaging_core/status.html", context)
