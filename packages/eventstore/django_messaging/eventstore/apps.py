from django.apps import AppConfig


class MessagingEventstoreConfig(AppConfig):
    name = "django_messaging.eventstore"
    label = "messaging_eventstore"
    verbose_name = "Messaging: Event store"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_messaging.core import status

        # conf declares MESSAGING["EVENTSTORE"]; leaders holds pushes to followers until commit.
        from django_messaging.eventstore import conf, leaders  # noqa: F401
        from django_messaging.eventstore.status import follower_figures

        leaders.install()
        status.register("eventstore", "database", follower_figures)
