"""Event store: the seed's TrainingSchool on the Django database, a follower, sync_followers."""

from __future__ import annotations

import io
import uuid

from django.apps import apps
from django.core.management import call_command
from django.db import connection
from eventsourcing.system import SingleThreadedRunner

from django_messaging.eventstore.conf import application_env
from tests.project.demo.context import DemoContext
from tests.project.eventstore_app.domain import Dog, Tally, TrickCounter, training_system

TITLE = "eventstore: an event-sourced application and a follower on the Django ORM"


def run(ctx: DemoContext) -> None:
    env = application_env()
    ctx.say(f"database: {connection.vendor}; environment from MESSAGING['EVENTSTORE']: {env}")
    runner = SingleThreadedRunner(training_system(), env=env)
    school = runner.apps["TrainingSchool"]  # type: ignore[attr-defined]
    name = f"Fido-{uuid.uuid4().hex[:6]}"
    school.register(name)
    school.add_trick(name, "roll over")
    school.add_trick(name, "play dead")
    ctx.say(f"{name} knows {school.get_tricks(name)}")
    last = school.recorder.max_notification_id()
    section = school.recorder.select_notifications(last - 2, 3)
    for notification in section:
        ctx.say(f"  notification #{notification.id}: {notification.topic.split(':')[-1]}")

    # A subscription sees an event as soon as it commits.
    with school.recorder.subscribe(gt=last) as subscription:
        school.add_trick(name, "sit")
        received = next(iter(subscription))
    ctx.say(f"subscription received #{received.id} ({received.topic.split(':')[-1]})")

    counter: TrickCounter = runner.apps["TrickCounter"]  # type: ignore[attr-defined]
    before = counter.get_count(name)
    config = apps.get_app_config("test_eventstore")
    config.runner = runner  # type: ignore[attr-defined]  (found by auto-discovery)
    try:
        out = io.StringIO()
        call_command("sync_followers", "--dry-run", stdout=out, verbosity=2)
        ctx.say("manage.py sync_followers --dry-run -v 2:")
        for line in out.getvalue().splitlines():
            ctx.say(f"  | {line.strip()}")
        ctx.say(
            f"after the dry run, TrickCounter counts {counter.get_count(name)} tricks for {name}"
        )
        out = io.StringIO()
        call_command("sync_followers", stdout=out, verbosity=2)
        ctx.say("manage.py sync_followers -v 2:")
        for line in out.getvalue().splitlines():
            ctx.say(f"  | {line.strip()}")
    finally:
        del config.runner  # type: ignore[attr-defined]
    after = counter.get_count(name)
    ctx.say(
        f"TrickCounter counts {after} tricks for {name} (aggregate Tally {Tally.create_id(Dog.create_id(name))})"
    )
    if before != 0 or after != 3:
        raise RuntimeError(f"expected the follower to count 3 tricks, got {after}")
