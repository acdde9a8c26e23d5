"""A replica's database outage: its messages wait in the worker and are applied when it is back.

An error that means "the database is not reachable right now" says nothing about the message,
so it must neither use up the message's retries nor dead-letter it. The worker keeps such
messages unacknowledged (RabbitMQ gives them to another worker if this one stops), tries again
with a growing delay, and logs the outage once when it starts and once when it ends.
"""

from __future__ import annotations

import logging
import time

from django import db

logger = logging.getLogger(__name__)

#: Errors that mean the database cannot be reached, not that the message is bad.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (db.OperationalError, db.InterfaceError)
FIRST_DELAY = 0.5
MAX_DELAY = 5.0


def is_transient(error: BaseException | None) -> bool:
    """Is ``error``, or an error it was raised from, a lost or refused database connection?"""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, TRANSIENT_ERRORS):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class DatabaseOutage:
    """When the next attempt is due, and what to log, while the database is away."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.delay = 0.0
        self.retry_at = 0.0

    def failed(self, error: BaseException, waiting: int) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self.delay = FIRST_DELAY
            logger.warning(
                "replica database unavailable (%s); %d message(s) wait unacknowledged and are "
                "applied when it is back",
                type(error).__name__,
                waiting,
            )
        else:
            self.delay = min(self.delay * 2, MAX_DELAY)
        self.retry_at = now + self.delay

    def remaining(self) -> float:
        """Seconds until the next attempt (0: try now)."""
        if self.since is None:
            return 0.0
        return max(0.0, self.retry_at - time.monotonic())

    def recovered(self) -> None:
        if self.since is not None:
            logger.info(
                "replica database back after %.1fs; applying the messages that waited",
                time.monotonic() - self.since,
            )
            self.since = None
