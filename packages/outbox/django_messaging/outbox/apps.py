from django.apps import AppConfig


class MessagingOutboxConfig(AppConfig):
    name = "django_messaging.outbox"
    label = "messaging_outbox"
    verbose_name = "Messaging: Outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_messaging.core import status
        from django_messaging.outbox import conf  # noqa: F401  (declares MESSAGING["OUTBOX"])
        from django_messaging.outbox.status import figures

        status.register("outbox", "database", figures)
