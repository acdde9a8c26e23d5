from __future__ import annotations

import datetime as dt
from typing import Any

from django_messaging.core.headers import as_text
from django_messaging.kafka.utils.message import Header


class RetryHeader(Header):
    """Headers of a message in a retry topic: the error, and when it is due (epoch seconds).
    ``RetryHeader.get(headers, RetryHeader.MESSAGE)`` reads one."""

    MESSAGE = "RETRY_MESSAGE"
    TIMESTAMP = "RETRY_TIMESTAMP"

    @staticmethod
    def get_retry_time(headers: list[tuple[str, Any]] | None) -> dt.datetime | None:
        value = Header.get(headers, RetryHeader.TIMESTAMP)
        if value is None:
            return None
        try:
            seconds = float(as_text(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
