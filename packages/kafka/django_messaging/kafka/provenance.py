"""Headers that say where a retried or dead-lettered message came from and why.

The original key, value and headers are kept as they were; these headers are added (and
replaced on each hop, except the ``ORIGINAL_*`` ones, which keep the first topic's values).
"""

from __future__ import annotations

import traceback
from typing import Any

from django import db

from django_messaging.core.headers import as_bytes, first_header, header_items
from django_messaging.kafka.utils.message import Message

ORIGINAL_TOPIC = "ORIGINAL_TOPIC"
ORIGINAL_PARTITION = "ORIGINAL_PARTITION"
ORIGINAL_OFFSET = "ORIGINAL_OFFSET"
ORIGINAL_TIMESTAMP = "ORIGINAL_TIMESTAMP"
ATTEMPT = "RETRY_ATTEMPT"
EXCEPTION_CLASS = "EXCEPTION_CLASS"
EXCEPTION_MESSAGE = "EXCEPTION_MESSAGE"
EXCEPTION_TRACEBACK = "EXCEPTION_TRACEBACK"

ORIGINAL = (ORIGINAL_TOPIC, ORIGINAL_PARTITION, ORIGINAL_OFFSET, ORIGINAL_TIMESTAMP)
#: Every header this library adds; stripped from a message before it is re-sent.
OWN = frozenset(
    (
        *ORIGINAL,
        ATTEMPT,
        EXCEPTION_CLASS,
        EXCEPTION_MESSAGE,
        EXCEPTION_TRACEBACK,
        "RETRY_MESSAGE",
        "RETRY_TIMESTAMP",
        "DEAD_LETTER_MESSAGE",
        "DEAD_LETTER_DETAIL",
        "DEAD_LETTER_SUMMARY",
        "DEAD_LETTER_MESSAGE_TOPIC",
        "DEAD_LETTER_MESSAGE_PARTITION",
        "DEAD_LETTER_MESSAGE_OFFSET",
    )
)
MAX_TRACEBACK = 16_000


def _class_name(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def format_traceback(exc: BaseException) -> str:
    """The frames of ``exc`` and of the exceptions it was raised from, with their classes only.

    An exception's text is left out: a database error quotes the SQL statement and the values
    of the message, and a handler's own error may quote the message it refused. The consumer's
    log has the full traceback.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(
            "Traceback (most recent call last):\n"
            + "".join(traceback.format_tb(current.__traceback__))
            + f"{_class_name(current)}\n"
        )
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    text = "\nwhich was raised while handling\n\n".join(parts)
    return text[-MAX_TRACEBACK:]


#: Errors whose text quotes what they were given (the SQL statement and its values, the bytes
#: that did not decode): their headers name the class and the place instead.
QUOTING_ERRORS: tuple[type[BaseException], ...] = (db.Error, UnicodeError)


def describe_failure(msg: Message, exc: BaseException) -> str:
    """The ``*_MESSAGE`` header: the handler's own error text, as django-kafka writes it, unless
    the error is one that quotes data, which gets its class and the message's coordinates."""
    if isinstance(exc, QUOTING_ERRORS):
        return f"{type(exc).__name__} handling {msg.topic()} [{msg.partition()}] @{msg.offset()}"
    return str(exc)


def provenance_headers(
    msg: Message,
    exc: BaseException,
    attempt: int,
    extra: list[tuple[str, Any]] = (),  # type: ignore[assignment]
) -> list[tuple[str, bytes]]:
    """The message's own headers (ours removed), then the provenance headers (as bytes)."""
    incoming = header_items(msg.headers())
    headers: list[tuple[str, Any]] = [(k, v) for k, v in incoming if k not in OWN]
    timestamp = msg.timestamp()[1] if msg.timestamp() else -1
    originals = {
        ORIGINAL_TOPIC: msg.topic(),
        ORIGINAL_PARTITION: msg.partition(),
        ORIGINAL_OFFSET: msg.offset(),
        ORIGINAL_TIMESTAMP: timestamp,
    }
    for name in ORIGINAL:
        previous = first_header(incoming, name)
        headers.append((name, previous if previous is not None else as_bytes(originals[name])))
    cls = type(exc)
    headers += [
        (ATTEMPT, as_bytes(attempt)),
        (EXCEPTION_CLASS, as_bytes(f"{cls.__module__}.{cls.__qualname__}")),
        (EXCEPTION_MESSAGE, as_bytes(describe_failure(msg, exc), errors="replace")),
        (EXCEPTION_TRACEBACK, as_bytes(format_traceback(exc), errors="replace")),
    ]
    # The error's text may hold lone surrogates: replaced, or the copy could not be sent.
    headers += [(k, as_bytes(v, errors="replace")) for k, v in extra]
    return headers
