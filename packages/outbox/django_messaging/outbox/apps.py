from django.apps import AppConfig
from django.core import checks


class MessagingOutboxConfig(AppConfig):
    name = "django_messaging.outbox"
    label = "messaging_outbox"
    verbose_name = "Messaging: Outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_messaging.core import status
        from django_messaging.core.durable import register_durable_sender
        from django_messaging.outbox import conf  # noqa: F401  (declares MESSAGING["OUTBOX"])
        from django_messaging.outbox.checks import check_transports
        from django_messaging.outbox.durable import OutboxSender
        from django_messaging.outbox.status import figures

        checks.register(check_transports)
        # Transactional sends of other packages (Kafka's on_commit produce) write outbox rows.
        register_durable_sender(OutboxSender())
        status.register("outbox", "database", figures)
