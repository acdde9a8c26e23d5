"""A Django ORM persistence module for the eventsourcing library.

Use it with ``PERSISTENCE_MODULE='django_messaging.eventstore'`` once
``'django_messaging.eventstore'`` is in ``INSTALLED_APPS`` and the database is migrated.
"""

from django_messaging.eventstore.factory import Factory

__version__ = "0.1.0"
__all__ = ["Factory"]
