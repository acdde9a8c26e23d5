"""The arguments of ``@kafka.retry(...)`` and ``RETRY_SETTINGS``, checked in one place: by
``RetrySettings`` and by the system check of the setting (which must not import the class)."""

from __future__ import annotations

from collections.abc import Sequence


def check_retry_arguments(
    max_retries: int,
    delay: float,
    backoff: bool = False,
    include: Sequence[type[BaseException]] | None = None,
    exclude: Sequence[type[BaseException]] | None = None,
    blocking: bool = True,
    log_every: int | None = None,
) -> None:
    """Raise ``ValueError`` for a value ``RetrySettings`` cannot take (``TypeError`` for an
    unknown or missing argument)."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < -1:
        raise ValueError(f"max_retries must be an int >= -1 (-1: forever), got {max_retries!r}")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay <= 0:
        raise ValueError(f"delay must be a number of seconds > 0, got {delay!r}")
    if include is not None and exclude is not None:
        raise ValueError("pass include or exclude, not both")
    if log_every is not None and (
        isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 0
    ):
        raise ValueError(f"log_every must be None or an int >= 0 (0: never), got {log_every!r}")
