"""``@kafka.retry(...)``: how a topic's failed messages are retried."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

from django.utils import timezone

from django_messaging.kafka.conf import settings
from django_messaging.kafka.retry.arguments import check_retry_arguments

T = TypeVar("T", bound=type)


class RetrySettings:
    """Retry a failed message ``max_retries`` times (``-1``: forever) waiting ``delay`` seconds
    (doubled each attempt with ``backoff``), for the exceptions in ``include`` or not in
    ``exclude``. ``blocking`` retries pause the partition; non-blocking ones go through
    ``<group>.<topic>.retry.N`` topics. Used as a class decorator of a topic.

    ``log_every`` says which failed attempts are logged: ``N`` logs attempts N, 2N, 3N, ...
    (as django-kafka 0.9+), ``0`` none (django-kafka's default), ``None`` (the default)
    attempts 1, 2, 4, 8, ..., so a message that keeps failing is seen without flooding the
    log. The dead letter is always logged.
    """

    def __init__(
        self,
        max_retries: int,
        delay: float,
        backoff: bool = False,
        include: Sequence[type[BaseException]] | None = None,
        exclude: Sequence[type[BaseException]] | None = None,
        blocking: bool = True,
        log_every: int | None = None,
    ) -> None:
        check_retry_arguments(max_retries, delay, backoff, include, exclude, blocking, log_every)
        self.max_retries = max_retries
        self.delay = delay
        self.backoff = backoff
        self.include = tuple(include) if include is not None else None
        self.exclude = tuple(exclude) if exclude is not None else None
        self.blocking = blocking
        self.log_every = log_every

    @classmethod
    def from_settings(cls) -> RetrySettings | None:
        """``RETRY_SETTINGS`` as RetrySettings (read now), or ``None``."""
        value = settings.RETRY_SETTINGS
        return cls(**value) if value else None

    def __call__(self, topic_cls: T) -> T:
        topic_cls.retry_settings = self  # type: ignore[attr-defined]
        return topic_cls

    def attempts_exceeded(self, attempt: int) -> bool:
        return self.max_retries != -1 and attempt > self.max_retries

    def should_retry_exception(self, exc: BaseException) -> bool:
        if self.include is not None:
            return isinstance(exc, self.include)
        if self.exclude is not None:
            return not isinstance(exc, self.exclude)
        return True

    def can_retry(self, attempt: int, exc: BaseException) -> bool:
        """May the ``attempt``-th retry (1-based) of a message that raised ``exc`` happen?"""
        return not self.attempts_exceeded(attempt) and self.should_retry_exception(exc)

    def should_log(self, attempt: int) -> bool:
        """Is the failure of the ``attempt``-th try (1-based) logged? See ``log_every``."""
        if self.log_every is None:
            return attempt & (attempt - 1) == 0
        return self.log_every > 0 and attempt % self.log_every == 0

    def first_logged(self, attempt: int) -> bool:
        """Is ``attempt`` the first logged one (which carries the traceback)?"""
        return attempt == (self.log_every or 1)

    def get_retry_delay(self, attempt: int) -> float:
        if self.backoff:
            return float(self.delay * 2 ** (attempt - 1))
        return float(self.delay)

    def get_retry_time(self, attempt: int) -> dt.datetime:
        return timezone.now() + dt.timedelta(seconds=self.get_retry_delay(attempt))

    def __repr__(self) -> str:
        return (
            f"RetrySettings(max_retries={self.max_retries}, delay={self.delay}, "
            f"backoff={self.backoff}, blocking={self.blocking}, log_every={self.log_every})"
        )

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, RetrySettings) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]
