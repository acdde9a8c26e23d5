from django.apps import AppConfig


class MessagingCqrsConfig(AppConfig):
    name = "django_messaging.cqrs"
    label = "messaging_cqrs"
    verbose_name = "Messaging: CQRS"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_messaging.core import status
        from django_messaging.cqrs import checks, conf  # noqa: F401  (declares MESSAGING["CQRS"])
        from django_messaging.cqrs.status import pending_figures, queue_figures

        status.register("cqrs", "database", pending_figures)
        status.register("cqrs", "rabbitmq", queue_figures)
