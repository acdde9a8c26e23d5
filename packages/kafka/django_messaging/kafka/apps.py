from django.apps import AppConfig


class MessagingKafkaConfig(AppConfig):
    name = "django_messaging.kafka"
    label = "messaging_kafka"
    verbose_name = "Messaging: Kafka"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_messaging.core import status
        from django_messaging.core.settings import on_change
        from django_messaging.kafka import (  # noqa: F401  (declares MESSAGING["KAFKA"], checks)
            autodiscover,
            checks,
            conf,
            kafka,
        )
        from django_messaging.kafka.status import lag_figures

        on_change(kafka.reset_clients)
        status.register("kafka", "kafka", lag_figures)
        autodiscover()
