"""``ApplicationRecorder.subscribe()`` for the Django recorders.

A subscription pulls the application's log from its ``gt`` position in a background thread
and hands the notifications to the iterating thread. It pulls again when woken:

* by a commit in this process that wrote to the log (all databases);
* by PostgreSQL ``NOTIFY`` from any process (the insert sends it in its transaction);
* otherwise every ``poll_interval`` seconds (``DJANGO_SUBSCRIPTION_POLL_INTERVAL``), which is
  how writers in other processes are noticed on SQLite and MariaDB.

Because ids of one application commit in order, and a page is read only up to a head every
id below which is visible (see :mod:`~.recorders`), reading ``notification_id > last seen``
never skips an event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
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


class PullsWhenWoken:
    """The pulling thread of a subscription (application log or DCB sequence): pull what is
    recorded, then again whenever woken (a commit in this process through :mod:`.wakeups`,
    ``NOTIFY`` where the dialect listens) or every ``poll_interval`` seconds.

    Mixed in before eventsourcing's listen/notify subscription class, whose ``_pull``,
    ``_has_been_notified``, ``_has_been_stopped`` and ``_thread_error`` it uses. A subclass
    calls :meth:`_prepare_waking` before that class's ``__init__`` (which starts the pulling
    thread) and :meth:`_start_waking` after it.
    """

    _has_been_notified: threading.Event
    _has_been_stopped: bool
    _thread_error: BaseException | None
    _pull: Callable[[], None]

    def _prepare_waking(self, using: str, key: wakeups.Key, poll_interval: float) -> None:
        self._using = using
        self._key = key
        self._poll_interval = poll_interval
        self._listen_thread: threading.Thread | None = None

    def _start_waking(self, dialect: Dialect, channel: str, name: str) -> None:
        wakeups.register(self._key, self)
        if dialect.listens:
            self._listen_thread = threading.Thread(
                target=self._listen, args=(dialect, channel), name=name, daemon=True
            )
            self._listen_thread.start()

    def wake(self) -> None:
        self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()  # type: ignore[misc]
        wakeups.unregister(self._key, self)

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)  # type: ignore[misc]
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


class DjangoSubscription(PullsWhenWoken, ListenNotifySubscription[ApplicationRecorder]):
    def __init__(
        self,
        recorder: ApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        source = cast(Subscribable, recorder)
        key = (source.using, source.application_name)
        self._prepare_waking(source.using, key, source.poll_interval)
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._start_waking(source.dialect, source.channel_name, f"listen-{source.application_name}")
