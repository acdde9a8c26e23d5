"""``ApplicationRecorder.subscribe()`` for the Django recorders.

A subscription pulls the application's log from its ``gt`` position in a background thread
and hands the notifications to the iterating thread. It pulls again when woken:

* by a commit in this process that wrote to the log (all databases);
* by PostgreSQL ``NOTIFY`` from any process (the insert sends it in its transaction);
* otherwise every ``poll_interval`` seconds (``DJANGO_SUBSCRIPTION_POLL_INTERVAL``), which is
  how writers in other processes are noticed on SQLite and MariaDB.

Because ids of one application commit in order (see :mod:`~.recorders`), reading
``notification_id > last seen`` never skips an event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol, cast

from django.db import connections
from eventsourcing.persistence import ApplicationRecorder, ListenNotifySubscription

from django_messaging.eventstore import wakeups
from django_messaging.eventstore.dialects import Dialect


class Subscribable(Protocol):
    """What a subscription needs of the recorder it reads."""

    using: str
    application_name: str
    poll_interval: float

    @property
    def dialect(self) -> Dialect: ...

    @property
    def channel_name(self) -> str: ...


logger = logging.getLogger(__name__)


class DjangoSubscription(ListenNotifySubscription[ApplicationRecorder]):
    def __init__(
        self,
        recorder: ApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        source = cast(Subscribable, recorder)
        # Set before the base class starts the pulling thread.
        self._poll_interval = source.poll_interval
        self._using = source.using
        self._key = (source.using, source.application_name)
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        wakeups.register(self._key, self)
        self._listen_thread: threading.Thread | None = None
        if source.dialect.listens:
            self._listen_thread = threading.Thread(
                target=self._listen,
                args=(source.dialect, source.channel_name),
                name=f"listen-{source.application_name}",
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

    def _listen(self, dialect: Dialect, channel: str) -> None:
        """Wait for appends by any process, where the database can tell."""
        try:
            dialect.listen(
                self._using, channel, self._has_been_notified, lambda: self._has_been_stopped
            )
        except BaseException as exc:
            # Polling still works; only the latency gets worse.
            logger.warning(
                "LISTEN for %r stopped (%s); falling back to polling every %ss",
                self._key[1],
                exc,
                self._poll_interval,
            )
