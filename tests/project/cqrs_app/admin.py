from django.contrib import admin

from django_messaging.cqrs.admin import CQRSAdminMasterSyncMixin
from tests.project.cqrs_app.models import Product


@admin.register(Product)
class ProductAdmin(CQRSAdminMasterSyncMixin, admin.ModelAdmin):
    list_display = ("id", "name", "cqrs_revision")
