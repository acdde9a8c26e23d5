"""``@substitute_error(errors, substitution)``: re-raise chosen exceptions as another type.

django-kafka keeps this decorator at ``django_kafka.management.commands.errors``. It is a package
here, not a module, so that Django does not list ``errors`` as a management command.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["substitute_error"]


def substitute_error(
    errors: Iterable[type[BaseException]], substitution: type[BaseException]
) -> Callable[[F], F]:
    """Decorate a function so that an exception of one of ``errors`` leaves it as
    ``substitution(original)``, chained to the original (same message; ``__cause__`` is the
    original). Other exceptions pass unchanged.

    ``@substitute_error([Exception], CommandError)`` on a command's ``handle`` makes any failure
    a clean ``CommandError`` (a message and exit status 1 instead of a traceback).
    """
    caught = tuple(errors)

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except caught as original:
                raise substitution(original) from original

        return wrapper  # type: ignore[return-value]

    return decorator
