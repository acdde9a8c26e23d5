"""Datetimes read from messages, as this project stores datetimes.

A message carries a datetime as text or as a parsed value, with an offset or without one. Django
stores an aware datetime when ``USE_TZ`` is on and a naive one, local time in ``TIME_ZONE``,
when it is off; SQLite and MySQL refuse an aware value then. :func:`as_stored` turns what a
message carries into what the project stores.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

__all__ = ["as_stored"]


def as_stored(value: dt.datetime) -> dt.datetime:
    """``value`` as Django stores it here: aware with ``USE_TZ``, naive in ``TIME_ZONE``
    without. A naive ``value`` was written by a sender without time zone support: it is read
    as its time in ``TIME_ZONE``, the zone it shares with this project (as Django reads a naive
    datetime)."""
    if settings.USE_TZ:
        return timezone.make_aware(value) if value.utcoffset() is None else value
    return timezone.make_naive(value) if value.utcoffset() is not None else value
