"""A save outside a transaction, and an instance's first update inside one, store the message
row in the save's own statement (PostgreSQL); a create inside one leaves its row to the commit
(controller.precommit); a row left by a process that died is sent as the instance's current
state."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_messaging.core.suppression import suppress
from django_messaging.cqrs.controller import producer, staging
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.publishing import wait_for_confirms
from tests.cqrs.conftest import ROOT, db_env, messages, queue_depth
from tests.helpers import skip_with_server_side_binding
from tests.project.cqrs_app.models import Filtered, Product, UuidItem

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="one statement for both rows is PostgreSQL's (a CTE with INSERT ... RETURNING)",
    ),
]


def test_a_create_outside_a_transaction_is_one_statement(broker, cqrs_settings):
    with CaptureQueriesContext(connection) as queries:
        product = Product.objects.create(name="one statement")
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "messaging_cqrs_pendingmessage" in queries[0]["sql"]
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    (message,) = messages(broker, cqrs_settings["queue"])
    assert (message["instance_pk"], message["instance_data"]["name"]) == (
        product.pk,
        "one statement",
    )
    assert message["signal_type"] == "SAVE"


def test_an_update_outside_a_transaction_is_one_statement(broker, cqrs_settings):
    product = Product.objects.create(name="before")
    wait_for_confirms()
    messages(broker, cqrs_settings["queue"])
    product.name = "after"
    with CaptureQueriesContext(connection) as queries:
        product.save()
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert product.cqrs_revision == 1  # read back by the statement itself
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    (message,) = messages(broker, cqrs_settings["queue"])
    data = message["instance_data"]
    assert (data["name"], data["cqrs_revision"]) == ("after", 1)
    assert message["previous_data"]["name"] == "before"


def test_a_uuid_key_from_a_default_takes_the_same_path(broker, cqrs_settings):
    with CaptureQueriesContext(connection) as queries:
        item = UuidItem.objects.create(name="uuid")
    assert len(queries) == 1
    wait_for_confirms()
    (message,) = messages(broker, cqrs_settings["queue"])
    assert uuid.UUID(message["instance_pk"]) == item.pk


def test_an_explicit_key_falls_back_to_a_transaction_and_still_publishes(broker, cqrs_settings):
    """Django may UPDATE an existing row for an explicit key: that save is not one INSERT."""
    with CaptureQueriesContext(connection) as queries:
        Product(id=987654, name="explicit").save()
    assert len(queries) > 1
    assert wait_for_confirms() == 0
    (message,) = messages(broker, cqrs_settings["queue"])
    assert message["instance_pk"] == 987654
    assert not PendingMessage.objects.exists()


def test_suppressed_and_filtered_creates_leave_no_row_and_no_message(broker, cqrs_settings):
    with suppress():
        Product.objects.create(name="suppressed")
    Filtered.objects.create(name="no")  # is_sync_instance() is False for short names
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    assert queue_depth(broker, cqrs_settings["queue"]) == 0


def test_a_create_opening_a_transaction_s_messages_carries_its_row_in_its_insert(
    broker, cqrs_settings
):
    """Besides BEGIN and COMMIT: the create's own INSERT, which writes the message row too (no
    message of the transaction precedes it, so the block's order holds)."""
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        product = Product.objects.create(name="in a transaction")
        stored = PendingMessage.objects.get()
        assert (stored.instance_pk, stored.body) == (str(product.pk), "")
    statements = [q["sql"] for q in queries if q["sql"] not in ("BEGIN", "COMMIT")]
    insert, _read = statements
    assert insert.startswith("WITH saved AS (INSERT")
    assert "messaging_cqrs_pendingmessage" in insert
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    (message,) = messages(broker, cqrs_settings["queue"])
    assert (message["instance_pk"], message["instance_data"]["name"]) == (
        product.pk,
        "in a transaction",
    )


def test_ten_creates_in_one_transaction_are_eleven_statements(broker, cqrs_settings):
    skip_with_server_side_binding()
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        products = [Product.objects.create(name=f"block {i}") for i in range(10)]
    statements = [q["sql"] for q in queries if q["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) == 11, statements
    assert "messaging_cqrs_pendingmessage" in statements[0]  # the first carries its row
    assert all("messaging_cqrs_pendingmessage" not in sql for sql in statements[1:10])
    assert statements[10].count("), (") == 8  # one INSERT of the other nine rows
    assert statements[10].endswith("; COMMIT")
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    received = [
        (m["instance_pk"], m["instance_data"]["name"])
        for m in messages(broker, cqrs_settings["queue"])
    ]
    assert received == [(p.pk, p.name) for p in products]


def test_an_update_inside_a_transaction_reads_its_revision_back(broker, cqrs_settings):
    product = Product.objects.create(name="before")
    wait_for_confirms()
    messages(broker, cqrs_settings["queue"])
    product.name = "after"
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        product.save()
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert product.cqrs_revision == 1
    assert wait_for_confirms() == 0
    (message,) = messages(broker, cqrs_settings["queue"])
    data = message["instance_data"]
    assert (data["name"], data["cqrs_revision"]) == ("after", 1)


def test_a_rolled_back_savepoint_takes_its_message_row_along(broker, cqrs_settings):
    with transaction.atomic():
        product = Product.objects.create(name="kept")
        try:
            with transaction.atomic():
                other = Product.objects.create(name="rolled back")
                product.name = "renamed, rolled back"
                product.save()
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        # The first create's row came with its INSERT; the rest waits for the commit.
        assert list(PendingMessage.objects.values_list("instance_pk", flat=True)) == [
            str(product.pk)
        ]
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    assert not Product.objects.filter(pk=other.pk).exists()
    received = [
        (m["instance_pk"], m["instance_data"]["name"])
        for m in messages(broker, cqrs_settings["queue"])
    ]
    assert received == [(product.pk, "renamed, rolled back")]


def test_a_filtered_create_in_a_transaction_leaves_no_row(broker, cqrs_settings):
    with transaction.atomic():
        Filtered.objects.create(name="no")  # is_sync_instance() is False for short names
        assert not PendingMessage.objects.exists()
    assert wait_for_confirms() == 0
    assert queue_depth(broker, cqrs_settings["queue"]) == 0


DIE_BEFORE_PUBLISHING = """
import os, signal
from django_messaging.cqrs import publishing
from tests.project.cqrs_app.models import Product

# The statement has committed both rows; the process dies before anything is published.
publishing.publish_staged = lambda payload, using: os.kill(os.getpid(), signal.SIGKILL)
Product.objects.create(name="died before publishing")
"""


def test_a_create_whose_process_died_is_sent_as_its_current_state(broker, cqrs_settings):
    env = {
        **os.environ,
        **db_env(),
        "PYTHONPATH": str(ROOT),
        "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
        "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
    }
    command = [sys.executable, "-m", "django", "shell", "--settings", "tests.project.settings"]
    done = subprocess.run(
        [*command, "-c", DIE_BEFORE_PUBLISHING], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == -9, done.stderr.decode()
    product = Product.objects.get(name="died before publishing")
    stored = PendingMessage.objects.get()
    assert (stored.instance_pk, stored.attempts, stored.body) == (str(product.pk), 0, "")
    # Changed since by a path that publishes nothing: the relay sends the row as it is now.
    Product.objects.filter(pk=product.pk).update(name="changed since")
    assert producer.flush_pending() == 0  # another process's row, younger than the grace
    cqrs_settings["master"] = {"CQRS_OUTBOX_GRACE": 0}
    assert producer.flush_pending() == 1
    assert not PendingMessage.objects.exists()
    (message,) = messages(broker, cqrs_settings["queue"])
    assert (message["instance_pk"], message["instance_data"]["name"]) == (
        product.pk,
        "changed since",
    )


def test_a_stored_create_of_a_row_deleted_since_is_dropped(broker, cqrs_settings, caplog):
    caplog.set_level("INFO", logger="django_messaging.cqrs.controller.staging")
    cqrs_settings["master"] = {"CQRS_OUTBOX_GRACE": 0}
    PendingMessage.objects.create(
        cqrs_id="product", signal_type="SAVE", instance_pk="424242", body="", attempts=0
    )
    PendingMessage.objects.create(
        cqrs_id="no_such_model", signal_type="SAVE", instance_pk="1", body="", attempts=0
    )
    assert producer.flush_pending() == 0
    assert not PendingMessage.objects.exists()
    assert "pk=424242: gone before its save was re-sent" in caplog.text
    assert "cqrs_id=no_such_model pk=1: no master model has this CQRS_ID" in caplog.text
    assert queue_depth(broker, cqrs_settings["queue"]) == 0


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def prepare_again():
    """Forget a fallback to plain statements that a test caused."""
    yield
    staging._prepare_failed[0] = False


def test_the_statement_is_prepared_on_psycopg_3(broker, cqrs_settings, new_pg_session):
    for i in range(3):
        Product.objects.create(name=f"prepared {i}")
    (statement,) = _prepared_statements()
    assert statement.startswith('WITH saved AS (INSERT INTO "test_cqrs_product"')
    assert wait_for_confirms() == 0
    assert len(messages(broker, cqrs_settings["queue"])) == 3


def test_prepared_statements_can_be_turned_off(broker, cqrs_settings, new_pg_session):
    cqrs_settings["master"] = {"CQRS_PREPARED_STATEMENTS": False}
    Product.objects.create(name="plain")
    assert _prepared_statements() == []
    wait_for_confirms()
    assert len(messages(broker, cqrs_settings["queue"])) == 1


def test_a_pooler_that_drops_prepared_statements_costs_no_save(
    broker, cqrs_settings, caplog, prepare_again, pg_binding
):
    """A pooler in transaction mode may hand the next statement to a server connection that
    never saw the PREPARE: the save is sent again unprepared, and so are later ones."""
    Product.objects.create(name="prepared")
    # Drop the server side of it behind psycopg's back, as such a pooler does.
    connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
    second = Product.objects.create(name="after the pooler switched")
    third = Product.objects.create(name="plain from now on")
    assert "prepared statements fail on database 'default'" in caplog.text
    assert _prepared_statements() == []
    assert wait_for_confirms() == 0
    names = [m["instance_data"]["name"] for m in messages(broker, cqrs_settings["queue"])]
    assert names == ["prepared", second.name, third.name]
    assert Product.objects.count() == 3


def test_a_transaction_never_sends_a_prepared_statement(
    broker, cqrs_settings, prepare_again, pg_binding
):
    """A prepared statement that fails inside a transaction would abort it: a save in one is
    sent plain, and a pooler that dropped the statement costs it nothing."""
    Product.objects.create(name="prepared")
    connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
    with transaction.atomic():
        Product.objects.create(name="in a transaction")
    assert _prepared_statements() == []
    assert wait_for_confirms() == 0
    names = [m["instance_data"]["name"] for m in messages(broker, cqrs_settings["queue"])]
    assert names == ["prepared", "in a transaction"]


def test_a_create_whose_message_cannot_be_built_leaves_no_row_to_a_caller_that_commits(
    broker, cqrs_settings, monkeypatch
):
    from django_messaging.cqrs import publishing

    def failing(*args, **kwargs):
        raise ValueError("the serializer failed")

    monkeypatch.setattr(publishing, "save_payload", failing)
    with transaction.atomic():
        with pytest.raises(ValueError, match="serializer failed"):
            Product.objects.create(name="unbuildable")  # its INSERT carried the message row
        assert Product.objects.filter(name="unbuildable").exists()
    assert not PendingMessage.objects.exists()
    assert wait_for_confirms() == 0
    assert queue_depth(broker, cqrs_settings["queue"]) == 0
