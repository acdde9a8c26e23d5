"""Subscriptions of this process, woken when a transaction that wrote to their application's
log commits, so they do not wait for the next poll.

Keyed by ``(database alias, application name)``; the recorders wake, the subscriptions
register, and neither needs to know the other.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

from django.db import transaction

Key = tuple[str, str]


class Wakeable(Protocol):
    def wake(self) -> None: ...


_registered: dict[Key, weakref.WeakSet[Wakeable]] = {}
_guard = threading.Lock()


def register(key: Key, subscriber: Wakeable) -> None:
    with _guard:
        _registered.setdefault(key, weakref.WeakSet()).add(subscriber)


def unregister(key: Key, subscriber: Wakeable) -> None:
    with _guard:
        subscribers = _registered.get(key)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del _registered[key]


def _wake(key: Key) -> None:
    with _guard:
        subscribers = list(_registered.get(key, ()))
    for subscriber in subscribers:
        subscriber.wake()


def wake_on_commit(key: Key) -> None:
    """Wake ``key``'s subscribers at once outside a transaction, else when it commits."""
    if key in _registered:
        transaction.on_commit(lambda: _wake(key), using=key[0])
