"""Django database errors seen through the eventsourcing exception classes.

Every recorder method runs inside :func:`translated`, so callers catch
``eventsourcing.persistence.IntegrityError`` (and friends) whatever the database, and
:func:`retrying` repeats a call that lost a deadlock or a dropped connection, when it is not
part of a caller's transaction (a retry there would repeat only half of the caller's work).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django import db
from django.db import connections
from eventsourcing import persistence as es

from django_messaging.core.reconnect import Backoff, database_outage

logger = logging.getLogger(__name__)

#: Django's exception classes, most specific first, and what they become.
_MAPPING: tuple[tuple[type[BaseException], type[es.PersistenceError]], ...] = (
    (db.IntegrityError, es.IntegrityError),
    (db.DataError, es.DataError),
    (db.OperationalError, es.OperationalError),
    (db.ProgrammingError, es.ProgrammingError),
    (db.NotSupportedError, es.NotSupportedError),
    (db.InternalError, es.InternalError),
    (db.InterfaceError, es.InterfaceError),
    (db.DatabaseError, es.DatabaseError),
    (db.Error, es.PersistenceError),
)


def translate(exc: BaseException) -> es.PersistenceError | None:
    for django_cls, es_cls in _MAPPING:
        if isinstance(exc, django_cls):
            return es_cls(str(exc))
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise ``django.db`` errors as the matching eventsourcing persistence errors."""
    try:
        yield
    except db.Error as exc:
        mapped = translate(exc)
        assert mapped is not None
        raise mapped from exc


#: Words in the messages of errors worth another attempt although the database is up: lost
#: deadlocks, lock waits, serialization failures and busy SQLite files. A database that is away
#: is recognised by :func:`~django_messaging.core.reconnect.database_outage`.
_CONTENDED = (
    "deadlock",
    "lock wait timeout",
    "could not serialize",
    "database is locked",
)

F = TypeVar("F", bound=Callable[..., Any])


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised because of, the database being away."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, db.Error) and database_outage(error):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def transient(exc: es.PersistenceError) -> bool:
    """Whether a failed call may succeed when simply made again."""
    if outage(exc):
        return True
    message = str(exc).lower()
    return any(words in message for words in _CONTENDED)


def retrying(attempts: int = 5, wait: float = 0.05) -> Callable[[F], F]:
    """Retry a recorder method on transient errors, unless it runs in a caller's transaction.

    The waits follow :class:`~django_messaging.core.reconnect.Backoff` from ``wait`` seconds,
    doubling each attempt.
    """
    backoff = Backoff(initial=wait, cap=wait * 2 ** max(attempts - 2, 0))

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            connection = connections[self.using]
            if connection.in_atomic_block:
                return method(self, *args, **kwargs)
            for attempt in range(1, attempts + 1):
                try:
                    return method(self, *args, **kwargs)
                except (es.OperationalError, es.InterfaceError) as exc:
                    if attempt == attempts or not transient(exc):
                        raise
                    if connection.connection is not None and not connection.is_usable():
                        connection.close()
                    logger.warning(
                        "%s.%s on %r failed (%s); attempt %d of %d",
                        type(self).__name__,
                        method.__name__,
                        self.using,
                        exc,
                        attempt,
                        attempts,
                    )
                    backoff.wait(attempt)
            raise AssertionError("unreachable")

        return wrapper  # type: ignore[return-value]

    return decorate
