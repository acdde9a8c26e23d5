"""The messages of a transaction.atomic() block are stored together just before its commit
(controller.precommit): with the change or not at all, in the order of the block."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.db import DatabaseError, connection, transaction

from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.publishing import wait_for_confirms
from tests.cqrs.conftest import ROOT, db_env, messages, queue_depth
from tests.project.cqrs_app.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


def _received(broker, cqrs_settings) -> list[tuple]:
    return [
        (m["signal_type"], m["instance_pk"], (m["instance_data"] or {}).get("name"))
        for m in messages(broker, cqrs_settings["queue"])
    ]


def test_a_rolled_back_block_stores_and_sends_none_of_its_messages(broker, cqrs_settings):
    kept = Product.objects.create(name="before the block")
    wait_for_confirms()
    messages(broker, cqrs_settings["queue"])
    with pytest.raises(RuntimeError), transaction.atomic():
        Product.objects.create(name="rolled back one")
        Product.objects.create(name="rolled back two")
        kept.name = "renamed, rolled back"
        kept.save()
        raise RuntimeError("roll back the block")
    assert not PendingMessage.objects.exists()
    # The next block of the same connection stores only its own message.
    with transaction.atomic():
        after = Product.objects.create(name="after the rollback")
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    assert _received(broker, cqrs_settings) == [("SAVE", after.pk, "after the rollback")]


def test_a_rolled_back_savepoint_drops_only_its_own_messages(broker, cqrs_settings):
    doomed = Product.objects.create(name="deleted in the savepoint")
    doomed_pk = doomed.pk
    wait_for_confirms()
    messages(broker, cqrs_settings["queue"])
    with transaction.atomic():
        first = Product.objects.create(name="first")
        try:
            with transaction.atomic():
                Product.objects.create(name="in the savepoint")
                doomed.delete()
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        with transaction.atomic():
            inner = Product.objects.create(name="in a kept savepoint")
        last = Product.objects.create(name="last")
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    assert Product.objects.filter(pk=doomed_pk).exists()
    assert _received(broker, cqrs_settings) == [
        ("SAVE", first.pk, "first"),
        ("SAVE", inner.pk, "in a kept savepoint"),
        ("SAVE", last.pk, "last"),
    ]


def test_the_order_of_a_block_is_kept_across_creates_updates_and_deletes(broker, cqrs_settings):
    old = Product.objects.create(name="old")
    gone = Product.objects.create(name="gone")
    wait_for_confirms()
    messages(broker, cqrs_settings["queue"])
    with transaction.atomic():
        a = Product.objects.create(name="a")
        old.name = "old, updated"
        old.save()
        gone_pk = gone.pk
        gone.delete()
        b = Product.objects.create(name="b")
        a.name = "a, saved again"
        a.save()
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    # One message per instance, at the place of its first save, carrying its last state.
    assert _received(broker, cqrs_settings) == [
        ("SAVE", a.pk, "a, saved again"),
        ("SAVE", old.pk, "old, updated"),
        ("DELETE", gone_pk, None),
        ("SAVE", b.pk, "b"),
    ]


def test_a_block_whose_messages_cannot_be_stored_commits_nothing(broker, cqrs_settings):
    """The INSERT of the messages fails at the commit: the change is rolled back with them and
    the caller gets the error (a database error the service cannot be made to give on cue)."""

    def refuse(execute, sql, params, many, context):
        if "messaging_cqrs_pendingmessage" in sql:
            raise DatabaseError("the message rows cannot be written")
        return execute(sql, params, many, context)

    with pytest.raises(DatabaseError, match="message rows"), transaction.atomic():
        Product.objects.create(name="never committed")  # its INSERT carries its message row
        connection.execute_wrappers.append(refuse)
        Product.objects.create(name="never committed either")  # stored at the commit
    connection.execute_wrappers.remove(refuse)
    assert not Product.objects.filter(name__startswith="never committed").exists()
    assert not PendingMessage.objects.exists()
    assert wait_for_confirms() == 0
    assert queue_depth(broker, cqrs_settings["queue"]) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement on PostgreSQL")
def test_the_first_create_of_a_block_carries_its_message_row_and_the_rest_follow_at_the_commit(
    broker, cqrs_settings
):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        first = Product.objects.create(name="first")
        second = Product.objects.create(name="second")
    writes = [q["sql"] for q in queries if "messaging_cqrs_pendingmessage" in q["sql"]]
    assert len(writes) == 2
    assert writes[0].startswith(f'WITH saved AS (INSERT INTO "{Product._meta.db_table}"')
    assert writes[1].startswith('INSERT INTO "messaging_cqrs_pendingmessage"')
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    assert _received(broker, cqrs_settings) == [
        ("SAVE", first.pk, "first"),
        ("SAVE", second.pk, "second"),
    ]


KILLED_AFTER_THE_COMMIT = """
import os, signal
from django.db import transaction
from tests.project.cqrs_app.models import Product

old = Product.objects.get(name="old")
with transaction.atomic():
    # Runs right after the commit, before the hooks that publish: the process dies there.
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    for i in range(5):
        Product.objects.create(name=f"killed {i}")
    old.name = "old, updated"
    old.save()
    Product.objects.get(name="gone").delete()
"""


def test_a_master_killed_after_the_commit_delivers_every_message_of_the_block(
    broker, cqrs_settings
):
    old = Product.objects.create(name="old")
    gone = Product.objects.create(name="gone")
    wait_for_confirms()
    messages(broker, cqrs_settings["queue"])
    env = {
        **os.environ,
        **db_env(),
        "PYTHONPATH": str(ROOT),
        "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
        "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
    }
    command = [sys.executable, "-m", "django", "shell", "--settings", "tests.project.settings"]
    done = subprocess.run(
        [*command, "-c", KILLED_AFTER_THE_COMMIT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -9, done.stderr.decode()
    created = list(Product.objects.filter(name__startswith="killed").order_by("pk"))
    assert len(created) == 5
    stored = list(PendingMessage.objects.order_by("id"))
    assert len(stored) == 7
    assert queue_depth(broker, cqrs_settings["queue"]) == 0
    cqrs_settings["master"] = {"CQRS_OUTBOX_GRACE": 0}
    assert producer.flush_pending() == 7
    assert not PendingMessage.objects.exists()
    assert _received(broker, cqrs_settings) == [
        *(("SAVE", p.pk, p.name) for p in created),
        ("SAVE", old.pk, "old, updated"),
        ("DELETE", gone.pk, None),
    ]
    # The created rows' messages were stored whole, not rebuilt from the rows.
    assert all(json.loads(row.body)["cqrs_id"] == "product" for row in stored[:5])
