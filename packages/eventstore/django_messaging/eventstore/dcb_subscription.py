"""``DCBRecorder.subscribe()`` for :class:`~django_messaging.eventstore.dcb.DjangoDCBRecorder`.

A background thread reads the sequence from the last position it handed out and queues the
events for the iterating thread. It reads again when an append in this process commits, on
PostgreSQL when any process's append commits (``LISTEN``/``NOTIFY``), and otherwise every
``poll_interval`` seconds (how appends by other processes are noticed on SQLite and MariaDB).
Positions commit in order, so reading ``position > last seen`` never skips an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventsourcing.dcb.api import DCBQuery
from eventsourcing.dcb.persistence import DCBListenNotifySubscription

from django_messaging.eventstore.dialects import dialect_for
from django_messaging.eventstore.subscription import PullsWhenWoken

if TYPE_CHECKING:
    from django_messaging.eventstore.dcb import DjangoDCBRecorder


class DjangoDCBSubscription(PullsWhenWoken, DCBListenNotifySubscription["DjangoDCBRecorder"]):
    def __init__(
        self,
        recorder: DjangoDCBRecorder,
        query: DCBQuery | None = None,
        after: int | None = None,
    ) -> None:
        self._prepare_waking(recorder.using, recorder.wakeup_key, recorder.poll_interval)
        super().__init__(recorder=recorder, query=query, after=after)
        self._start_waking(
            dialect_for(recorder.connection),
            recorder.channel_name,
            f"listen-dcb-{recorder.application_name}",
        )
