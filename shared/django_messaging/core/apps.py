from django.apps import AppConfig
from django.core.signals import setting_changed


class MessagingCoreConfig(AppConfig):
    name = "django_messaging.core"
    label = "messaging_core"
    verbose_name = "Messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_messaging.core import (
            checks,  # noqa: F401  (registers the system checks)
            sampling,  # noqa: F401  (declares MESSAGING["STATUS"])
        )
        from django_messaging.core.settings import clear_caches

        setting_changed.connect(clear_caches, dispatch_uid="django_messaging.core.settings")
