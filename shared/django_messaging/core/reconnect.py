"""One back-off policy for every reconnect and retry loop of every package.

``Backoff(initial=0.5, cap=30).delay(attempt)`` is ``initial · 2^(attempt-1)``, capped at
``cap``, then spread over its upper half at random ("equal jitter"): a fleet of workers that lost
the same broker at the same moment does not come back in lockstep, and no wait is shorter than
half the nominal one.

``database_outage(error)`` tells an error of the database itself being away (a connection that
cannot be made or was closed) from an error of what was asked of it (a constraint, bad data):
workers wait for the first with this back-off and never dead-letter a message for it.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from django import db

__all__ = ["Backoff", "database_outage"]


@dataclass(frozen=True)
class Backoff:
    """``initial`` seconds before the first retry, doubling up to ``cap``."""

    initial: float = 0.5
    cap: float = 30.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap < self.initial:
            raise ValueError(f"Backoff needs 0 < initial <= cap, got {self.initial}, {self.cap}")

    def nominal(self, attempt: int) -> float:
        """The wait before retry ``attempt`` (1-based) without jitter."""
        return min(self.initial * 2 ** min(max(attempt, 1) - 1, 62), self.cap)

    def delay(self, attempt: int) -> float:
        """The wait before retry ``attempt``: between half the nominal wait and all of it."""
        nominal = self.nominal(attempt)
        return nominal / 2 + random.uniform(0, nominal / 2)

    def wait(self, attempt: int, stop: threading.Event | None = None) -> bool:
        """Sleep before retry ``attempt``; ``False`` when ``stop`` was set meanwhile."""
        seconds = self.delay(attempt)
        if stop is None:
            threading.Event().wait(seconds)
            return True
        return not stop.wait(seconds)


#: Words in the messages of errors raised when the server is away rather than the request wrong.
_AWAY = (
    "connection refused",
    "could not connect",
    "connection to server",
    "server closed the connection",
    "connection already closed",
    "the connection is closed",
    "connection is closed",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "lost connection",
    "gone away",
    "can't connect",
    "connection reset",
    "broken pipe",
    "ssl syscall error",
    "consuming input failed",
    "no connection to the server",
    # Django's connection pool (psycopg_pool's PoolTimeout): no connection could be opened or
    # freed within the pool's timeout.
    "couldn't get a connection",
)


def database_outage(error: BaseException) -> bool:
    """``True`` for an error of the database being unreachable, whatever the backend."""
    if isinstance(error, db.InterfaceError):
        return True
    if not isinstance(error, db.OperationalError):
        return False
    text = str(error).lower()
    return any(words in text for words in _AWAY)
