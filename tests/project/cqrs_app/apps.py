from django.apps import AppConfig


class CqrsAppConfig(AppConfig):
    name = "tests.project.cqrs_app"
    label = "test_cqrs"
    default_auto_field = "django.db.models.BigAutoField"
