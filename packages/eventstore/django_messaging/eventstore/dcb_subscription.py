"""``DCBRecorder.subscribe()`` for :class:`~django_messaging.eventstore.dcb.DjangoDCBRecorder`.

A background thread reads the sequence from the last position it handed out and queues the
events for the iterating thread. It reads again when an append in this process commits, and
otherwise every ``poll_interval`` seconds (how appends by other processes are noticed).
Positions commit in order, so reading ``position > last seen`` never skips an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connections
from eventsourcing.dcb.api import DCBQuery
from eventsourcing.dcb.persistence import DCBListenNotifySubscription

from django_messaging.eventstore import wakeups

if TYPE_CHECKING:
    from django_messaging.eventstore.dcb import DjangoDCBRecorder


class DjangoDCBSubscription(DCBListenNotifySubscription["DjangoDCBRecorder"]):
    def __init__(
        self,
        recorder: DjangoDCBRecorder,
        query: DCBQuery | None = None,
        after: int | None = None,
    ) -> None:
        # Set before the base class starts the reading thread.
        self._poll_interval = recorder.poll_interval
        self._using = recorder.using
        self._key = recorder.wakeup_key
        super().__init__(recorder=recorder, query=query, after=after)
        wakeups.register(self._key, self)

    def wake(self) -> None:
        self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()
        wakeups.unregister(self._key, self)

    def _loop_on_pull(self) -> None:
        try:
            self._pull()  # What is already recorded.
            while not self._has_been_stopped:
                self._has_been_notified.wait(timeout=self._poll_interval)
                self._pull()
        except BaseException as exc:
            if self._thread_error is None:
                self._thread_error = exc
            self.stop()
        finally:
            connections[self._using].close()
