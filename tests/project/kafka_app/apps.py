from django.apps import AppConfig


class KafkaAppConfig(AppConfig):
    name = "tests.project.kafka_app"
    label = "test_kafka"
    default_auto_field = "django.db.models.BigAutoField"
