from django.apps import AppConfig


class MessagingCoreConfig(AppConfig):
    name = "django_messaging.core"
    label = "messaging_core"
    verbose_name = "Messaging"

    def ready(self) -> None:
        from django_messaging.core import checks  # noqa: F401  (registers the system checks)
