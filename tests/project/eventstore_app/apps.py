from django.apps import AppConfig


class EventstoreAppConfig(AppConfig):
    name = "tests.project.eventstore_app"
    label = "test_eventstore"
    default_auto_field = "django.db.models.BigAutoField"
