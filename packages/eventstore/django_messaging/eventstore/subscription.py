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
import select
import threading
from collections.abc import Sequence
from typing import Any

from django.db import connections
from eventsourcing.persistence import ListenNotifySubscription

from django_messaging.eventstore.recorders import (
    DjangoApplicationRecorder,
    register_subscription,
    unregister_subscription,
)

logger = logging.getLogger(__name__)


class DjangoSubscription(ListenNotifySubscription[DjangoApplicationRecorder]):
    def __init__(
        self,
        recorder: DjangoApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        # Set before the base class starts the pulling thread.
        self._poll_interval = recorder.poll_interval
        self._key = (recorder.using, recorder.application_name)
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        register_subscription(self._key, self)
        self._listen_thread: threading.Thread | None = None
        if recorder.vendor == "postgresql":
            self._listen_thread = threading.Thread(
                target=self._listen, name=f"listen-{recorder.application_name}", daemon=True
            )
            self._listen_thread.start()

    def wake(self) -> None:
        self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()
        unregister_subscription(self._key, self)

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
            connections[self._recorder.using].close()

    def _listen(self) -> None:
        """Wait for ``NOTIFY`` on the application's channel (PostgreSQL only)."""
        wrapper = connections[self._recorder.using]
        try:
            wrapper.ensure_connection()
            raw = wrapper.connection
            with wrapper.cursor() as cursor:
                cursor.execute(f'LISTEN "{self._recorder.channel_name}"')
            notifies = getattr(raw, "notifies", None)
            while not self._has_been_stopped:
                if callable(notifies):  # psycopg 3
                    for _ in raw.notifies(timeout=0.1, stop_after=1):
                        self._has_been_notified.set()
                else:  # psycopg2
                    if select.select([raw], [], [], 0.1)[0]:
                        raw.poll()
                        if raw.notifies:
                            raw.notifies.clear()
                            self._has_been_notified.set()
        except BaseException as exc:
            # Polling still works; only the latency gets worse.
            logger.warning(
                "LISTEN for %r stopped (%s); falling back to polling every %ss",
                self._recorder.application_name,
                exc,
                self._poll_interval,
            )
        finally:
            wrapper.close()
