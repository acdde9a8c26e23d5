from django.apps import AppConfig


class OutboxAppConfig(AppConfig):
    name = "tests.project.outbox_app"
    label = "test_outbox"
    default_auto_field = "django.db.models.BigAutoField"
