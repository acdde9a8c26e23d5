"""Suppress outgoing messages for a block of code: ``with suppress():`` / ``@suppress(["topic"])``.

One switch for the whole process: Kafka producers, the outbox ``@publish`` hook and CQRS master
signals all ask :func:`is_suppressed` before they send. State lives in a ``ContextVar``, so it is
private to a thread and to an asyncio task. The decorator evaluates suppression each time the
function is *entered*, on top of what is active at that moment, so nesting only ever adds:
a function decorated ``@suppress(["A"])`` called inside ``with suppress():`` keeps everything
suppressed. ``unsuppress()`` switches suppression off inside its block.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _State:
    everything: bool = False
    names: frozenset[str] = frozenset()

    def add(self, names: frozenset[str] | None) -> _State:
        if names is None or self.everything:
            return _State(everything=True)
        return _State(names=self.names | names)


_NOTHING = _State()
_state: ContextVar[_State] = ContextVar("django_messaging_suppression", default=_NOTHING)


def is_suppressed(destination: str | None = None) -> bool:
    """Is sending to ``destination`` suppressed here? With no destination: is everything?"""
    state = _state.get()
    if state.everything:
        return True
    return destination is not None and destination in state.names


def suppressed_destinations() -> frozenset[str] | None:
    """``None`` when everything is suppressed, else the suppressed names (possibly empty)."""
    state = _state.get()
    return None if state.everything else state.names


class _Switch:
    """Shared machinery of suppress/unsuppress: a context manager and a per-call decorator."""

    def __init__(self, names: frozenset[str] | None) -> None:
        self._names = names
        self._tokens: list[Token[_State]] = []

    def _next_state(self) -> _State:
        raise NotImplementedError

    def __enter__(self) -> None:
        self._tokens.append(_state.set(self._next_state()))

    def __exit__(self, *exc: object) -> None:
        _state.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        make = functools.partial(type(self)._fresh, self._names)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with make():
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with make():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    @classmethod
    def _fresh(cls, names: frozenset[str] | None) -> _Switch:
        switch = cls.__new__(cls)
        _Switch.__init__(switch, names)
        return switch


class _Suppress(_Switch):
    def _next_state(self) -> _State:
        return _state.get().add(self._names)


class _Unsuppress(_Switch):
    def _next_state(self) -> _State:
        return _NOTHING


def _names(destinations: Iterable[str] | str | None) -> frozenset[str] | None:
    if destinations is None:
        return None
    if isinstance(destinations, str):
        return frozenset([destinations])
    return frozenset(destinations)


@overload
def suppress(destinations: F) -> F: ...
@overload
def suppress(destinations: Iterable[str] | str | None = None) -> _Switch: ...
def suppress(destinations: Any = None) -> Any:
    """Suppress sending to ``destinations`` (all when ``None``) while the block or call runs.

    Works as ``@suppress``, ``@suppress()``, ``@suppress(["a", "b"])`` and ``with suppress(...):``.
    """
    if callable(destinations):
        return _Suppress(None)(destinations)
    return _Suppress(_names(destinations))


@overload
def unsuppress(func: F) -> F: ...
@overload
def unsuppress(func: None = None) -> _Switch: ...
def unsuppress(func: Any = None) -> Any:
    """Lift every suppression inside the block or call: ``@unsuppress`` or ``with unsuppress():``."""
    if func is not None:
        return _Unsuppress(None)(func)
    return _Unsuppress(None)
