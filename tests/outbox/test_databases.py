"""Outbox rows in several databases: a row is written in the database of the change it comes
with (the same transaction); ``publish``, ``outbox_purge`` and ``messaging_status`` cover the
databases of ``OUTBOX["DATABASES"]``, or the ones ``--database`` names."""

from __future__ import annotations

import datetime as dt
import json
import signal
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from tests.helpers import read_topic, wait_until
from tests.outbox.brokers import kafka_transport, new_topic, relay_env
from tests.outbox.helpers import outbox_settings
from tests.project.outbox_app.models import PLAIN, PlainModel

pytestmark = [
    pytest.mark.django_db(transaction=True, databases={"default", "eventstore"}),
    pytest.mark.timeout(120),
]

OTHER = "eventstore"


def statuses(using: str) -> list[str]:
    return list(Published.objects.using(using).values_list("status", flat=True))


def sent(using: str) -> int:
    return Published.objects.using(using).filter(status=StatusChoice.SUCCEEDED).count()


def bodies(probe) -> set[str]:  # type: ignore[no-untyped-def]
    return {json.loads(body)["field_one"] for _, body in probe.messages}


def stop(proc) -> str:  # type: ignore[no-untyped-def]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    return str(out)


def test_a_model_saved_in_another_database_is_relayed_from_that_database(
    stomp_address, probe, processes
) -> None:
    p = probe(PLAIN)
    with transaction.atomic(using=OTHER):
        for i in range(5):
            PlainModel.objects.using(OTHER).create(field_one=f"other-{i}", field_two="x")
    with pytest.raises(RuntimeError), transaction.atomic(using=OTHER):
        PlainModel.objects.using(OTHER).create(field_one="rolled back", field_two="x")
        raise RuntimeError("rollback")
    for i in range(3):
        PlainModel.objects.create(field_one=f"default-{i}", field_two="x")
    # each row sits beside its change: the rolled back save left none
    assert len(statuses(OTHER)) == 5
    assert len(statuses("default")) == 3

    relay = processes.start("publish", "--database", OTHER, "--batch-size", "2")
    wait_until(lambda: sent(OTHER) == 5, timeout=60, what="the other database's rows sent")
    wait_until(lambda: len(p.messages) >= 5, what="their messages on the broker")
    out = stop(relay)
    assert bodies(p) == {f"other-{i}" for i in range(5)}
    assert "outbox relay (database eventstore)" in out
    # the relay of one database leaves the other's rows alone
    assert not Published.objects.exclude(status=StatusChoice.SCHEDULE).exists()
    assert not Published.objects.filter(claimed_by__isnull=False).exists()

    both = processes.start("publish", "--database", "default", "--database", OTHER)
    wait_until(lambda: sent("default") == 3, timeout=60, what="the default database's rows sent")
    wait_until(lambda: len(p.messages) >= 8, what="every message on the broker")
    stop(both)
    assert bodies(p) == {f"other-{i}" for i in range(5)} | {f"default-{i}" for i in range(3)}
    assert len(p.messages) == 8


def test_kafka_produce_on_commit_with_using_is_relayed_from_that_database(
    kafka_bootstrap, processes
) -> None:
    from django_messaging.kafka.topic import Topic

    name = new_topic(kafka_bootstrap, partitions=1)
    topic = type("OtherDatabaseTopic", (Topic,), {"name": name})
    transports = {"kafka": kafka_transport(kafka_bootstrap)}
    from tests.outbox.brokers import outbox_with

    with outbox_with(transports), transaction.atomic(using=OTHER):
        for i in range(4):
            topic().produce(f"v{i}", key="k", on_commit=True, using=OTHER)
    assert Published.objects.using(OTHER).count() == 4
    assert not Published.objects.exists()

    env = relay_env(transports, kafka_bootstrap)
    relay = processes.start("publish", "--transport", "kafka", "--database", OTHER, env=env)
    wait_until(lambda: sent(OTHER) == 4, timeout=60, what="the rows sent")
    stop(relay)
    records = read_topic(kafka_bootstrap, name, 4)
    assert [(r.key(), r.value()) for r in records] == [(b"k", f"v{i}".encode()) for i in range(4)]


def test_outbox_purge_purges_the_database_it_is_given() -> None:
    old = timezone.now() - dt.timedelta(days=30)
    for using in ("default", OTHER):
        Published.objects.using(using).bulk_create(
            [
                Published(
                    destination="/topic/x",
                    body={"i": i},
                    status=StatusChoice.SUCCEEDED,
                    sent_at=old,
                )
                for i in range(3)
            ]
        )
        Published.objects.using(using).create(destination="/topic/x", body={"unsent": True})
    call_command("outbox_purge", "--days", "1", "--database", OTHER, "--published-only")
    assert statuses(OTHER) == [StatusChoice.SCHEDULE]
    assert len(statuses("default")) == 4
    call_command("outbox_purge", "--days", "1", "--published-only")
    assert statuses("default") == [StatusChoice.SCHEDULE]


def test_an_unknown_database_is_refused(processes) -> None:
    relay = processes.start("publish", "--database", "nowhere")
    out, _ = relay.communicate(timeout=60)
    assert relay.returncode == 2, out[-3000:]
    assert "--database 'nowhere' is not in DATABASES" in out
    with pytest.raises(CommandError, match="'nowhere' is not in DATABASES"):
        call_command("outbox_purge", "--database", "nowhere")


def test_the_databases_setting_is_what_publish_relays_by_default(probe, processes) -> None:
    p = probe(PLAIN)
    PlainModel.objects.using(OTHER).create(field_one="other", field_two="x")
    PlainModel.objects.create(field_one="default", field_two="x")
    relay = processes.start("publish", env={"MESSAGING_OUTBOX_DATABASES": f"default,{OTHER}"})
    wait_until(lambda: sent(OTHER) == 1 and sent("default") == 1, timeout=60, what="both sent")
    wait_until(lambda: len(p.messages) >= 2, what="both messages on the broker")
    out = stop(relay)
    assert bodies(p) == {"other", "default"}
    assert "outbox relay (database eventstore)" in out


def status_figures() -> dict[tuple[str, str], float]:
    out = StringIO()
    call_command("messaging_status", "--json", "--package", "outbox", stdout=out)
    return {
        (f["metric"], f["labels"]["database"]): f["value"]
        for f in json.loads(out.getvalue())["figures"]
    }


def test_status_and_purge_cover_every_database_of_the_setting() -> None:
    old = timezone.now() - dt.timedelta(days=30)
    for using, unsent in (("default", 1), (OTHER, 3)):
        Published.objects.using(using).create(
            destination="/topic/x", body={}, status=StatusChoice.SUCCEEDED, sent_at=old
        )
        for _ in range(unsent):
            Published.objects.using(using).create(destination="/topic/x", body={})
    Published.objects.using(OTHER).create(
        destination="/topic/x", body={}, status=StatusChoice.FAILED
    )
    # without the setting: the router's database only
    assert status_figures() == {
        ("outbox_backlog", "default"): 1,
        ("outbox_oldest_unsent_age_seconds", "default"): pytest.approx(0, abs=30),
        ("outbox_failed", "default"): 0,
    }
    with outbox_settings(DATABASES=["default", OTHER]):
        figures = status_figures()
        assert figures[("outbox_backlog", "default")] == 1
        assert figures[("outbox_backlog", OTHER)] == 3
        assert figures[("outbox_failed", OTHER)] == 1
        out = StringIO()
        call_command("outbox_purge", "--days", "1", "--published-only", stdout=out)
    assert "deleted 1 published and 0 received rows in database 'default'" in out.getvalue()
    assert f"deleted 1 published and 0 received rows in database '{OTHER}'" in out.getvalue()
    assert sent("default") == sent(OTHER) == 0
    assert len(statuses(OTHER)) == 4


def test_a_database_of_the_setting_must_be_in_databases() -> None:
    with outbox_settings(DATABASES=["default", "nowhere"]):
        errors = [e for e in checks.run_checks() if e.id == "messaging.E006"]
    assert len(errors) == 1
    assert "'DATABASES']: names 'nowhere', which is not in DATABASES" in errors[0].msg
