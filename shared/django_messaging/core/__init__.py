"""Shared foundation of django-messaging: settings, serializers, suppression and the worker runtime."""

from django_messaging.core.exceptions import MessagingError
from django_messaging.core.suppression import is_suppressed, suppress, unsuppress

__all__ = ["MessagingError", "is_suppressed", "suppress", "unsuppress"]
__version__ = "0.1.0"
