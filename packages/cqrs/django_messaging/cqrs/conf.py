"""The ``MESSAGING["CQRS"]`` settings section: every key, its default and its type."""

from django_messaging.core.settings import Section

settings = Section("CQRS", "django_messaging.cqrs", {})
