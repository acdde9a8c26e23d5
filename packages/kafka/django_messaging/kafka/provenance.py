"""Headers that say where a retried or dead-lettered message came from and why.

The original key, value and headers are kept as they were; these headers are added (and
replaced on each hop, except the ``ORIGINAL_*`` ones, which keep the first topic's values).
"""

from __future__ import annotations

import traceback
from typing import Any

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
    )
)
MAX_TRACEBACK = 16_000


def format_traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text[-MAX_TRACEBACK:]


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
        (EXCEPTION_MESSAGE, as_bytes(str(exc), errors="replace")),
        (EXCEPTION_TRACEBACK, as_bytes(format_traceback(exc), errors="replace")),
    ]
    # The error's text may hold lone surrogates: replaced, or the copy could not be sent.
    headers += [(k, as_bytes(v, errors="replace")) for k, v in extra]
    return headers
