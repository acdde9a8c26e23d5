from django.apps import AppConfig


class EventstoreAppConfig(AppConfig):
    name = "tests.project.eventstore_app"
    label = "test_eventstore"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The seed's pattern: one application instance, built from the settings, held by the
        # AppConfig. Constructing it does not touch the database.
        from django_messaging.eventstore.conf import application_env
        from tests.project.eventstore_app.domain import TrainingSchool

        self.training_school = TrainingSchool(env=application_env())
