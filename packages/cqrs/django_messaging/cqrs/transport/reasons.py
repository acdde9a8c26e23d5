"""The text of a retry's or dead letter's ``x-cqrs-error`` header.

It says what failed and where, with ids (cqrs_id, pk, revision) and the exception's class. It
never quotes an exception's message: a database error carries the SQL statement and the values
of the message, and a replica's own exception may quote the data it refused. The worker's log
has the full error.
"""

from __future__ import annotations

from typing import Any

from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.exceptions import PayloadError

MAX_ID = 64


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_ID else f"{text[: MAX_ID - 3]}..."


def ids(payload: TransportPayload) -> str:
    parts = [f"cqrs_id={_short(payload.cqrs_id)}", f"pk={_short(payload.pk)}"]
    revision = payload.instance_data.get("cqrs_revision")
    if isinstance(revision, int) and not isinstance(revision, bool):
        parts.append(f"revision={revision}")
    return " ".join(parts)


def _error(error: BaseException) -> str:
    # PayloadError messages are this package's own and name keys and types, never values.
    if isinstance(error, PayloadError):
        return f"PayloadError: {error}"
    return type(error).__name__


def malformed(error: BaseException) -> str:
    """A message that could not be decoded or has a key of the wrong type."""
    return f"malformed message: {_error(error)}"


def apply_failed(payload: TransportPayload, error: BaseException) -> str:
    """A message the replica could not apply."""
    return f"{ids(payload)}: {payload.signal_type.value} failed: {_error(error)}"


def expired(payload: TransportPayload) -> str:
    return f"{ids(payload)}: expired"


def unknown_cqrs_id(payload: TransportPayload) -> str:
    return f"{ids(payload)}: no replica model with this CQRS_ID here"
