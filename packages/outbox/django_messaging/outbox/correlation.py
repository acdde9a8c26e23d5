"""The correlation id (``dop-correlation-id``): one id that follows a request into the
messages it causes and into the log lines of the callbacks that handle them.

- A web request's id is kept by :class:`CorrelationIdMiddleware`, which reads the request header
  ``CORRELATION_ID_REQUEST_HEADER`` (``X-Request-ID``) or makes one; or it is returned by the
  function ``CORRELATION_ID_FUNCTION`` names (for projects whose request ids come from another
  package).
- Every outbox row gets the header when it is written (``@publish``, ``Published.save()``,
  ``send_event``): the current id, else a new uuid4 for each message.
- The subscriber runs each callback with the incoming id (or a new one) as the current id:
  ``payload.correlation_id``, :func:`get_correlation_id`, and ``%(correlation_id)s`` in log
  records passed through :class:`CorrelationIdFilter`.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from django_messaging.outbox.conf import settings
from django_messaging.outbox.headers import CORRELATION_ID_HEADER, RAW

__all__ = [
    "CORRELATION_ID_HEADER",
    "CorrelationIdFilter",
    "CorrelationIdMiddleware",
    "correlation_id",
    "get_correlation_id",
    "new_correlation_id",
    "with_correlation_id",
]

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "django_messaging_correlation_id", default=None
)


def get_correlation_id() -> str | None:
    """The current id: the one the middleware, the subscriber or :func:`correlation_id` set,
    else what ``CORRELATION_ID_FUNCTION`` returns; ``None`` when there is none."""
    value = _current.get()
    if value is not None:
        return value
    function = settings.imported("CORRELATION_ID_FUNCTION")
    if function is not None:
        found = function()
        if found:
            return str(found)
    return None


def new_correlation_id() -> str:
    """The id an outgoing message carries: the current one, else a new uuid4."""
    return get_correlation_id() or str(uuid.uuid4())


def with_correlation_id(headers: dict[str, Any] | None, current: str | None) -> dict[str, Any]:
    """A row's headers with ``dop-correlation-id``: the caller's if it set one, else the
    current id, else a new uuid4 for this message. A row that carries a Kafka record exactly
    (``durable.RAW``) keeps the record's own headers."""
    if not headers:
        return {CORRELATION_ID_HEADER: current or str(uuid.uuid4())}
    if CORRELATION_ID_HEADER in headers or RAW in headers:
        return headers
    return {CORRELATION_ID_HEADER: current or str(uuid.uuid4()), **headers}


@contextmanager
def correlation_id(value: str) -> Iterator[str]:
    """Make ``value`` the current id inside the block (the middleware and the subscriber use
    this; so can a management command or a task)."""
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` to every record (``"-"`` when there is none), for formatters'
    ``%(correlation_id)s``. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = get_correlation_id() or "-"
        return True


def _request_id(request: Any) -> str:
    name = settings.CORRELATION_ID_REQUEST_HEADER
    value = request.headers.get(name, "").strip()
    # A header longer than a uuid's text is cut: it ends up in every outbox row's headers.
    return value[:255] if value else str(uuid.uuid4())


class CorrelationIdMiddleware:
    """Takes the request's id from ``CORRELATION_ID_REQUEST_HEADER`` (or makes a uuid4), makes
    it the current id while the request is handled, and returns it in the same response header.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        value = _request_id(request)
        request.correlation_id = value
        with correlation_id(value):
            response = self.get_response(request)
        return self._tag(response, value)

    async def __acall__(self, request: Any) -> Any:
        value = _request_id(request)
        request.correlation_id = value
        with correlation_id(value):
            response = await self.get_response(request)
        return self._tag(response, value)

    @staticmethod
    def _tag(response: Any, value: str) -> Any:
        name = settings.CORRELATION_ID_REQUEST_HEADER
        if name not in response:
            response[name] = value
        return response
