"""Leaders tell their followers about new events once those events are committed.

An eventsourcing ``Leader`` (every ``ProcessApplication`` too) hands what it saved to the
runner as soon as the events are recorded: ``NewSingleThreadedRunner`` and
``NewMultiThreadedRunner`` process the pushed events as they are, the other runners take the
push as a prompt to read the log. Recorders of this package join a caller's
``transaction.atomic`` block, so the events may not be committed yet at that moment: a
follower then processed an event that was rolled back afterwards (and failed on the next event,
which gets the same notification id), or looked at the log too early and missed the event
until the next save.

:func:`install` (called by the app's ``ready()``) makes ``Leader._notify`` wait: when the
leader's recorder is one of this package's and its connection is inside an atomic block, the
push is registered with ``transaction.on_commit`` and runs after the outermost block commits,
or never if the block (or the savepoint around the save) rolls back. Outside an atomic block,
and for applications stored elsewhere, nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, wraps
from typing import Any

from django.db import connections, transaction
from eventsourcing.persistence import Recording
from eventsourcing.system import Leader

from django_messaging.eventstore.recorders import DjangoRecorder

Notify = Callable[[Leader[Any], list[Recording[Any]]], None]

_MARK = "_messaging_waits_for_commit"


def _after_commit(notify: Notify) -> Notify:
    @wraps(notify)
    def _notify(self: Leader[Any], recordings: list[Recording[Any]]) -> None:
        recorder = self.recorder
        if (
            recordings
            and isinstance(recorder, DjangoRecorder)
            and connections[recorder.using].in_atomic_block
        ):
            transaction.on_commit(partial(notify, self, recordings), using=recorder.using)
            return
        notify(self, recordings)

    setattr(_notify, _MARK, True)
    return _notify


def install() -> None:
    """Make leaders push to followers only what is committed (once per process)."""
    notify = Leader._notify
    if not getattr(notify, _MARK, False):
        setattr(Leader, "_notify", _after_commit(notify))  # noqa: B010
