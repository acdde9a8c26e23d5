"""The transport interface, kept at the path custom transports import it from.

It lives in :mod:`django_messaging.core.transports`; these are the same classes.
"""

from django_messaging.core.transports import (
    BatchResult,
    Confirmations,
    OutgoingMessage,
    Transport,
)

__all__ = ["BatchResult", "Confirmations", "OutgoingMessage", "Transport"]
