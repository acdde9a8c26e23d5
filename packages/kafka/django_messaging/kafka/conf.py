"""The ``MESSAGING["KAFKA"]`` settings section: every key, its default and its type."""

from django_messaging.core.settings import Section

settings = Section("KAFKA", "django_messaging.kafka", {})
