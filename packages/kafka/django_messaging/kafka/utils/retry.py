"""``@retry(exceptions, tries, delay, backoff)``: call a function again when it raises."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)

__all__ = ["retry"]


def retry(
    exceptions: tuple[type[BaseException], ...] = (Exception,),
    tries: int = -1,
    delay: float = 0,
    backoff: float = 1,
) -> Callable[[F], F]:
    """Call the decorated function up to ``tries`` times (``-1``: until it succeeds) while it
    raises one of ``exceptions``, sleeping ``delay`` seconds between calls, multiplied by
    ``backoff`` after each. The last exception propagates; others propagate at once."""
    if tries == 0 or tries < -1:
        raise ValueError(f"tries must be -1 (no limit) or at least 1, got {tries}")

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            left, wait, attempt = tries, delay, 1
            while True:
                try:
                    return func(*args, **kwargs)
                except exceptions as exc:
                    left -= 1
                    if left == 0:
                        raise
                    logger.debug(
                        "%s failed (attempt %d): %r; again in %ss",
                        func.__qualname__,
                        attempt,
                        exc,
                        wait,
                    )
                    time.sleep(wait)
                    wait *= backoff
                    attempt += 1

        return wrapper  # type: ignore[return-value]

    return decorator
