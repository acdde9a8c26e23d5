"""Model field values as they travel in ``instance_data``, and back.

Dates and datetimes are written with ``str()`` (``"2026-12-02 06:45:23.123456+00:00"``) and UUIDs
as their canonical string, exactly as django-cqrs writes them. Types django-cqrs cannot send are
written so that ``Field.to_python`` on the replica restores them without loss: ``Decimal`` as a
string with every digit, ``time`` as ISO 8601, ``timedelta`` as an ISO 8601 duration and binary
data as base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.utils.duration import duration_iso_string
from django.utils.functional import Promise

from django_messaging.core.datetimes import as_stored

_PLAIN = (str, int, float, bool)
_AS_STR = (dt.datetime, dt.date, uuid.UUID, Decimal)
_BINARY = (bytes, bytearray, memoryview)
_SEQUENCES = (list, tuple, set, frozenset)


def to_wire(value: Any) -> Any:
    """One field value, JSON-ready."""
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, _AS_STR):
        return str(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return duration_iso_string(value)
    if isinstance(value, _BINARY):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, _SEQUENCES):
        return [to_wire(v) for v in value]
    return value


def from_wire(field: Any, value: Any) -> Any:
    """One ``instance_data`` value as the replica field's Python value. A datetime comes back
    as this project stores it: aware with ``USE_TZ``, naive time in ``TIME_ZONE`` without it
    (SQLite and MySQL refuse an aware one then)."""
    if value is None:
        return None
    value = field.to_python(value)
    if isinstance(value, dt.datetime):
        return as_stored(value)
    return value
