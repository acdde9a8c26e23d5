from django.apps import AppConfig


class MessagingEventstoreConfig(AppConfig):
    name = "django_messaging.eventstore"
    label = "messaging_eventstore"
    verbose_name = "Messaging: Event store"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # conf declares MESSAGING["EVENTSTORE"]; leaders holds pushes to followers until commit.
        from django_messaging.eventstore import conf, leaders  # noqa: F401

        leaders.install()
