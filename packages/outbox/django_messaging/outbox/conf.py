"""The ``MESSAGING["OUTBOX"]`` settings section: every key, its default and its type."""

from django_messaging.core.settings import Section

settings = Section("OUTBOX", "django_messaging.outbox", {})
