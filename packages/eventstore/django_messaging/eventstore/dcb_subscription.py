"""``DCBRecorder.subscribe()`` for :class:`~django_messaging.eventstore.dcb.DjangoDCBRecorder`.

A background thread reads the sequence from the last position it handed out and queues the
events for the iterating thread. It reads again when an append in this process commits, on
PostgreSQL when any process's append commits (``LISTEN``/``NOTIFY``), and otherwise every
``poll_interval`` seconds (how appends by other processes are noticed on SQLite and MariaDB).
Positions commit in order, so reading ``position > last seen`` never skips an event.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from django.db import connections
from eventsourcing.dcb.api import DCBQuery
from eventsourcing.dcb.persistence import DCBListenNotifySubscription

from django_messaging.eventstore import wakeups
from django_messaging.eventstore.dialects import dialect_for

if TYPE_CHECKING:
    from django_messaging.eventstore.dcb import DjangoDCBRecorder


logger = logging.getLogger(__name__)


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
        self._listen_thread: threading.Thread | None = None
        if recorder.connection.vendor == "postgresql":
            self._listen_thread = threading.Thread(
                target=self._listen,
                args=(recorder.channel_name,),
                name=f"listen-dcb-{recorder.application_name}",
                daemon=True,
            )
            self._listen_thread.start()

    def wake(self) -> None:
        self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()
        wakeups.unregister(self._key, self)

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            if self._listen_thread is not None:
                self._listen_thread.join()

    def _listen(self, channel: str) -> None:
        """Wake the reading thread on every append by any process (PostgreSQL)."""
        connection = connections[self._using]
        try:
            dialect_for(connection).listen(
                self._using, channel, self._has_been_notified, lambda: self._has_been_stopped
            )
        except BaseException as exc:
            # Polling still works; only the latency gets worse.
            logger.warning(
                "LISTEN for DCB %r stopped (%s); falling back to polling every %ss",
                self._key[1],
                exc,
                self._poll_interval,
            )

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
