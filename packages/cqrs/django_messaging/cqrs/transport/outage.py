"""A replica's database outage: its messages wait in the worker and are applied when it is back.

An error that means "the database is not reachable right now" says nothing about the message,
so it must neither use up the message's retries nor dead-letter it. The worker keeps such
messages unacknowledged (RabbitMQ gives them to another worker if this one stops), tries again
with a growing delay, and logs the outage once when it starts and once when it ends.
"""

from __future__ import annotations

import logging
import time

from django_messaging.core.reconnect import Backoff, database_outage

logger = logging.getLogger(__name__)

#: The wait between attempts while the database is away.
RETRY = Backoff(initial=0.5, cap=5.0)


def is_transient(error: BaseException | None) -> bool:
    """Is ``error``, or an error it was raised from, the database being away?"""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if database_outage(error):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


class DatabaseOutage:
    """When the next attempt is due, and what to log, while the database is away."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.attempts = 0
        self.retry_at = 0.0

    def failed(self, error: BaseException, waiting: int) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self.attempts = 0
            logger.warning(
                "replica database unavailable (%s); %d message(s) wait unacknowledged and are "
                "applied when it is back",
                type(error).__name__,
                waiting,
            )
        self.attempts += 1
        self.retry_at = now + RETRY.delay(self.attempts)

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
