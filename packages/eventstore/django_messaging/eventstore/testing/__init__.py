"""Test event-sourced code on the Django event store: see what an application recorded in its
notification log, and bring followers up to date synchronously with the code of
``sync_followers``.

    from django_messaging.eventstore.testing import EventLog, follow

    def test_tricks_are_counted(db):
        runner = SingleThreadedRunner(system, env={"PERSISTENCE_MODULE": "django_messaging.eventstore"})
        school = runner.get(TrainingSchool)
        with EventLog(school) as log:
            school.register("Fido")
            school.add_trick("Fido", "sit")
        log.assert_recorded("TrainingSchool", Dog.TrickAdded, trick="sit")
        follow(runner)                                  # each follower, one transaction each
        assert runner.get(TrickCounter).get_count("Fido") == 1

:class:`EventLog` reads the notifications from the store, so only what is written there
counts: a rolled-back transaction leaves nothing (and no gap). :func:`follow` runs
:func:`~django_messaging.eventstore.followers.sync_follower` for the runner's followers (a
runner that is not started processes nothing by itself) and runs the commit hooks of their
transactions, so in-process subscriptions are woken as after a real commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from eventsourcing.application import Application
from eventsourcing.system import Runner

from django_messaging.eventstore.followers import application, sync_follower
from django_messaging.eventstore.runners import get_runner
from django_messaging.testing import MessageLog, SentMessage, committed

__all__ = ["EventLog", "follow"]


class EventLog:
    """The notifications ``applications`` record while the block runs (and after it, until
    read again): :meth:`notifications` reads them from the store each time it is called.

    Each is a :class:`~django_messaging.testing.SentMessage` whose destination is the
    application's name, ``key`` the originator id, headers ``topic`` and
    ``originator_version``, and ``value`` the domain event.
    """

    def __init__(self, *applications: Application[Any]) -> None:
        self.applications = {app.name: app for app in applications}
        self._start: dict[str, int] = {}

    def __enter__(self) -> EventLog:
        self._start = {
            name: app.recorder.max_notification_id() or 0  # type: ignore[attr-defined]
            for name, app in self.applications.items()
        }
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def notifications(self, application: str | None = None) -> MessageLog:
        """What was recorded since the block began (by ``application``, or by all)."""
        log = MessageLog()
        names = [application] if application is not None else list(self.applications)
        for name in names:
            app = self.applications[name]
            start = self._start.get(name, 0)
            for notification in _all_after(app, start):
                log.record(
                    SentMessage(
                        name,
                        notification.state,
                        (
                            ("topic", notification.topic),
                            ("originator_version", str(notification.originator_version)),
                        ),
                        key=notification.originator_id,
                        extra={"id": notification.id},
                        decoder=_decoder(app, notification),
                    )
                )
        return log

    def events(self, application: str | None = None) -> list[Any]:
        """The domain events recorded since the block began."""
        return [m.value for m in self.notifications(application)]

    def assert_recorded(self, application: str, event_class: type, **attributes: Any) -> Any:
        """Assert that ``application`` recorded an ``event_class`` event with ``attributes``;
        return the last such event."""
        events = self.events(application)
        found = [
            e
            for e in events
            if isinstance(e, event_class)
            and all(getattr(e, k, _MISSING) == v for k, v in attributes.items())
        ]
        if not found:
            seen = ", ".join(type(e).__qualname__ for e in events) or "nothing"
            raise AssertionError(
                f"{application} recorded no {event_class.__qualname__} with {attributes}; "
                f"recorded: {seen}"
            )
        return found[-1]


_MISSING = object()


def _decoder(app: Application[Any], notification: Any) -> Callable[[bytes | None], Any]:
    def decode(_body: bytes | None) -> Any:
        return app.mapper.to_domain_event(notification)

    return decode


def _all_after(app: Application[Any], start: int) -> Iterable[Any]:
    while True:
        batch = app.recorder.select_notifications(  # type: ignore[attr-defined]
            start, 100, inclusive_of_start=False
        )
        if not batch:
            return
        yield from batch
        start = batch[-1].id


def follow(runner: Runner[Any] | None = None, *followers: str) -> dict[str, dict[str, int]]:
    """Bring ``followers`` (default: all) of ``runner`` (default: the one ``sync_followers``
    finds) up to date, one transaction each, as ``manage.py sync_followers`` does; return the
    events processed per follower and leader. A follower's error propagates."""
    runner = runner if runner is not None else get_runner()
    names = list(followers) or list(runner.system.followers)
    processed: dict[str, dict[str, int]] = {}
    for name in names:
        with committed(_database(runner, name)):
            processed[name] = sync_follower(runner, name)
    return processed


def _database(runner: Runner[Any], name: str) -> str:
    return getattr(application(runner, name).recorder, "using", None) or "default"
