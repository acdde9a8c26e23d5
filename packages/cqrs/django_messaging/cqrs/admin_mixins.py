"""The module path django-cqrs's README imports the admin mixin from."""

from django_messaging.cqrs.admin import CQRSAdminMasterSyncMixin

__all__ = ["CQRSAdminMasterSyncMixin"]
