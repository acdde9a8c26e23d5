"""The ``MESSAGING["EVENTSTORE"]`` settings section: every key, its default and its type."""

from django_messaging.core.settings import Section

settings = Section("EVENTSTORE", "django_messaging.eventstore", {})
