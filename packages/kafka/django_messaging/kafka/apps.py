from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("MESSAGING", "DJANGO_KAFKA"):
        from django_messaging.kafka import kafka

        kafka.reset_clients()


class MessagingKafkaConfig(AppConfig):
    name = "django_messaging.kafka"
    label = "messaging_kafka"
    verbose_name = "Messaging: Kafka"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_messaging.kafka import autodiscover, conf  # noqa: F401  (declares MESSAGING["KAFKA"])

        setting_changed.connect(_settings_changed, dispatch_uid="django_messaging.kafka.settings")
        autodiscover()
