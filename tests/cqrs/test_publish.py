"""Publisher confirms: a message the broker refuses is stored, in every confirm mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import (
    connection,
    transaction,
)

from django_messaging.core.worker import close_connections_and_pools
from django_messaging.cqrs.controller import producer
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.publishing import wait_for_confirms
from django_messaging.cqrs.transport import RabbitMQTransport
from tests.cqrs.conftest import ROOT, db_env, messages, queue_depth
from tests.helpers import wait_until
from tests.project.cqrs_app.models import Author, Product, Publisher
from tests.project.cqrs_app.serializers import AuthorSerializer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refusing_queue(broker, cqrs_settings):
    """A queue that makes the broker nack every 'product' publish (x-overflow=reject-publish)."""
    name = cqrs_settings["queue"] + "-full"
    broker.queue_declare(queue=name, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    broker.queue_bind(queue=name, exchange=cqrs_settings["exchange"], routing_key="product")
    yield name
    broker.queue_delete(queue=name)


@pytest.mark.parametrize("mode", ["outbox", "each", "pipelined"])
def test_a_refused_message_is_stored_not_dropped(mode, refusing_queue, cqrs_settings):
    """django-cqrs research §4.2 #3 and #8: no confirms, so refused messages vanished."""
    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": mode}
    product = Product.objects.create(name="refused")
    wait_for_confirms()
    stored = PendingMessage.objects.get()
    assert (stored.cqrs_id, stored.instance_pk) == ("product", str(product.pk))
    assert "nack" in stored.last_error
    # The message itself is kept, whichever way its row was first written.
    assert json.loads(stored.body)["instance_data"]["name"] == "refused"


def test_default_mode_stores_in_the_transaction_and_deletes_once_confirmed(broker, cqrs_settings):
    product = Product.objects.create(name="first")
    wait_for_confirms()
    producer.delete_confirmed(force=True)
    stored: list = []
    with transaction.atomic():
        # Runs right after the commit, before the hook that publishes.
        transaction.on_commit(
            lambda: stored.extend(PendingMessage.objects.values_list("attempts", "body"))
        )
        product.name = "second"
        product.save()
        product.name = "third"
        product.save()
        # Written with the change just before the commit (see test_precommit), not before.
        assert not PendingMessage.objects.exists()
    ((attempts, body),) = stored
    assert (attempts, json.loads(body)["instance_data"]["name"]) == (0, "third")
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    assert queue_depth(broker, cqrs_settings["queue"]) == 2
    bodies = []
    for _ in range(2):
        _method, _props, body = broker.basic_get(cqrs_settings["queue"], auto_ack=True)
        bodies.append(json.loads(body)["instance_data"])
    assert [(b["name"], b["cqrs_revision"]) for b in bodies] == [("first", 0), ("third", 1)]


def test_saves_never_wait_for_the_delete_of_confirmed_rows(broker, cqrs_settings, monkeypatch):
    """The publisher thread deletes the rows the broker confirmed, on its own connection: the
    saving thread runs no DELETE, and the rows go without anyone waiting for confirms."""
    monkeypatch.setattr(producer, "DELETE_BATCH", 5)
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        for i in range(30):
            with transaction.atomic():
                Product.objects.create(name=f"p{i}")
            time.sleep(0.02)  # confirms of earlier saves arrive while saves go on
        wait_until(lambda: not PendingMessage.objects.exists(), what="rows of confirmed messages")
    assert not [sql for sql in statements if sql.lstrip().upper().startswith("DELETE")]
    assert queue_depth(broker, cqrs_settings["queue"]) == 30
    assert wait_for_confirms() == 0


KILL_AFTER_COMMIT = """
import os, signal
from django.db import connection, transaction  # connection: read by a skipif
from tests.project.cqrs_app.models import Author, Product, Publisher
from tests.project.cqrs_app.serializers import AuthorSerializer
with transaction.atomic():
    # Runs right after the commit, before the hook that publishes: the process dies there.
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    Product.objects.create(name="killed after commit")
"""


def test_a_master_killed_after_the_commit_loses_nothing(broker, cqrs_settings):
    """With the confirm awaited after the commit ("each", and django-cqrs, which does not wait at
    all) a process killed between the commit and the publish lost the change."""
    env = {
        **os.environ,
        **db_env(),
        "PYTHONPATH": str(ROOT),
        "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
        "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
    }
    command = [sys.executable, "-m", "django", "shell", "--settings", "tests.project.settings"]
    done = subprocess.run(
        [*command, "-c", KILL_AFTER_COMMIT], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == -9, done.stderr.decode()
    product = Product.objects.get(name="killed after commit")
    stored = PendingMessage.objects.get()
    assert (stored.instance_pk, stored.attempts) == (str(product.pk), 0)
    assert queue_depth(broker, cqrs_settings["queue"]) == 0
    # A live process leaves another's in-flight rows alone until they are old enough...
    assert producer.flush_pending() == 0
    # ...then the relay (cqrs_pending run or flush) sends it.
    cqrs_settings["master"] = {"CQRS_OUTBOX_GRACE": 0}
    assert producer.flush_pending() == 1
    assert not PendingMessage.objects.exists()
    _method, _props, body = broker.basic_get(cqrs_settings["queue"], auto_ack=True)
    assert json.loads(body)["instance_pk"] == product.pk


def test_pipelined_confirms_deliver_everything(broker, cqrs_settings):
    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": "pipelined", "CQRS_CONFIRM_WINDOW": 10}
    for i in range(50):
        Product.objects.create(name=f"p{i}")
    assert wait_for_confirms() == 0
    assert queue_depth(broker, cqrs_settings["queue"]) == 50
    assert not PendingMessage.objects.exists()


def test_a_serializer_reads_related_rows_as_committed(broker, cqrs_settings):
    """The message of a serializer model describes the committed transaction, as in django-cqrs,
    even when related rows change after the instance's last save."""
    publisher = Publisher.objects.create(name="before")
    with transaction.atomic():
        author = Author.objects.create(name="a", publisher=publisher)
        publisher.name = "after"
        publisher.save()
    assert wait_for_confirms() == 0
    (message,) = messages(broker, cqrs_settings["queue"])
    assert message["instance_data"]["publisher"] == {"id": publisher.pk, "name": "after"}
    assert message["instance_pk"] == author.pk
    assert not PendingMessage.objects.exists()


@pytest.fixture
def broken_serializer(monkeypatch):
    def fail(self):
        raise ValueError("serializer bug")

    monkeypatch.setattr(AuthorSerializer, "data", property(fail))
    return monkeypatch


def test_a_failing_serializer_fails_the_transaction(broker, cqrs_settings, broken_serializer):
    """django-cqrs logs the error after the commit and the change is never sent."""
    with pytest.raises(ValueError, match="serializer bug"), transaction.atomic():
        Author.objects.create(name="never")
    assert not Author.objects.exists()
    assert not PendingMessage.objects.exists()
    assert queue_depth(broker, cqrs_settings["queue"]) == 0


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(
            "outbox",
            marks=pytest.mark.skipif(
                "connection.vendor != 'postgresql'",
                reason="elsewhere the save and its message share a transaction, which fails",
            ),
            id="outbox-own-statement",
        ),
        "each",
    ],
)
def test_a_failing_serializer_after_the_commit_keeps_the_change(
    mode, broker, cqrs_settings, broken_serializer, caplog
):
    """When the save is committed before the message is built (by its own statement, or with
    confirms awaited after the commit) the message stays stored, is retried, and goes once
    the serializer works."""
    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": mode}
    author = Author.objects.create(name="kept")
    assert "serialization failed" in caplog.text
    assert queue_depth(broker, cqrs_settings["queue"]) == 0
    stored = PendingMessage.objects.get()
    assert (stored.cqrs_id, stored.instance_pk, stored.body) == ("author", str(author.pk), "")
    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": mode, "CQRS_OUTBOX_GRACE": 0}
    assert producer.flush_pending() == 0  # still failing: the row stays, with the error
    stored = PendingMessage.objects.get()
    assert stored.attempts >= 1 and "serializer bug" in stored.last_error
    broken_serializer.undo()
    assert producer.flush_pending() == 1
    assert not PendingMessage.objects.exists()
    (message,) = messages(broker, cqrs_settings["queue"])
    assert message["instance_data"]["name"] == "kept"


def test_a_serializer_whose_query_fails_does_not_break_the_relay(
    broker, cqrs_settings, monkeypatch
):
    """On PostgreSQL a failed query aborts the transaction it runs in: the relay rebuilds each
    message in a savepoint, so it can still record the error on the row and go on."""

    def failing_query(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_for_the_serializer")

    monkeypatch.setattr(AuthorSerializer, "data", property(failing_query))
    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": "each", "CQRS_OUTBOX_GRACE": 0}
    author = Author.objects.create(name="needs a table")
    stored = PendingMessage.objects.get()
    assert (stored.instance_pk, stored.attempts) == (str(author.pk), 1)
    PendingMessage.objects.filter(pk=stored.pk).update(last_error="")
    assert producer.flush_pending() == 0
    stored.refresh_from_db()
    assert stored.attempts == 2
    assert "no_such_table_for_the_serializer" in stored.last_error


@pytest.mark.parametrize("mode", ["outbox", "each", "pipelined"])
def test_one_connection_serves_every_publish(mode, broker, cqrs_settings, monkeypatch):
    """django-cqrs 2.8.1 opened a connection per message."""
    import pika

    from django_messaging.cqrs.transport import rabbit_mq

    opened = []
    real = pika.BlockingConnection

    def counting(*args, **kwargs):
        opened.append(args)
        return real(*args, **kwargs)

    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": mode}
    RabbitMQTransport.clean_connection()
    monkeypatch.setattr(rabbit_mq.pika, "BlockingConnection", counting)
    for i in range(20):
        Product.objects.create(name=f"c{i}")
    assert wait_for_confirms() == 0
    assert queue_depth(broker, cqrs_settings["queue"]) == 20
    assert len(opened) == 1


@pytest.mark.parametrize("mode", ["outbox", "each", "pipelined"])
def test_a_forked_child_publishes_on_a_connection_of_its_own(
    mode, broker, cqrs_settings, monkeypatch
):
    """A process forked after its parent published (a pre-fork server's workers) opens a
    broker connection of its own; the parent's, which the child inherited, goes on serving
    the parent alone, which opens none again (django-cqrs 3.1.0)."""
    import pika

    from django_messaging.cqrs.transport import rabbit_mq

    opened: list[int] = []
    real = pika.BlockingConnection

    def counting(*args, **kwargs):
        opened.append(os.getpid())
        return real(*args, **kwargs)

    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": mode}
    RabbitMQTransport.clean_connection()
    monkeypatch.setattr(rabbit_mq.pika, "BlockingConnection", counting)
    Product.objects.create(name="parent before")
    assert wait_for_confirms() == 0
    assert opened == [os.getpid()]
    close_connections_and_pools()  # the child opens its own database connection, as workers do
    pid = os.fork()
    if pid == 0:  # the child: never back into the test runner
        code = 1
        try:
            Product.objects.create(name="child")
            confirmed = wait_for_confirms() == 0
            code = 0 if confirmed and opened[1:] == [os.getpid()] else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish publishing within 60 s")
    # 2: the child sent on the parent's connection (or opened more than one of its own)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    Product.objects.create(name="parent after")
    assert wait_for_confirms() == 0
    assert opened == [os.getpid()], "the parent had to connect again"
    names = sorted(m["instance_data"]["name"] for m in messages(broker, cqrs_settings["queue"]))
    assert names == ["child", "parent after", "parent before"]


def test_unroutable_messages_are_logged_not_stored(cqrs_settings, caplog):
    caplog.set_level("INFO", logger="django_messaging.cqrs.transport.confirming")
    Product.objects.create(name="nobody listens")  # no queue bound on this test's exchange
    wait_for_confirms()
    assert "no replica queue is bound to 'product'" in caplog.text
    assert not PendingMessage.objects.exists()


def test_old_tombstones_are_purged(settings):
    import datetime as dt

    from django.utils import timezone

    from django_messaging.cqrs.models import Tombstone
    from django_messaging.cqrs.utils import purge_tombstones

    old = Tombstone.objects.create(cqrs_id="product", instance_pk="1", deleted_at=timezone.now())
    Tombstone.objects.filter(pk=old.pk).update(created=timezone.now() - dt.timedelta(days=8))
    Tombstone.objects.create(cqrs_id="product", instance_pk="2", deleted_at=timezone.now())
    assert purge_tombstones() == 1
    assert list(Tombstone.objects.values_list("instance_pk", flat=True)) == ["2"]


def _payload(pk, outbox_id=None, **data):
    from django_messaging.cqrs.constants import SignalType
    from django_messaging.cqrs.dataclasses import TransportPayload

    payload = TransportPayload(SignalType.SAVE, "product", {"id": pk, **data}, pk)
    payload.outbox_id = outbox_id
    payload.origin_db = "default"
    return payload


def test_the_publisher_thread_sends_each_payloads_one_encoding(broker, cqrs_settings, caplog):
    """The body on the wire is the payload's one encoding; a message that cannot be encoded is
    reported (and, having no row to keep it, logged) while the others go."""
    from django_messaging.cqrs.controller import publisher

    stored, plain, broken = _payload(1, outbox_id=11), _payload(2), _payload(3, price=object())
    for payload in (stored, plain, broken):
        publisher.submit(payload)
    assert wait_for_confirms() == 0
    assert "cqrs_id=product pk=3: not published (" in caplog.text
    bodies = []
    while True:
        _method, _props, body = broker.basic_get(cqrs_settings["queue"], auto_ack=True)
        if body is None:
            break
        bodies.append(body)
    assert bodies == [stored.body(), plain.body()]


@pytest.mark.parametrize("atomic", [True, False])
def test_a_saved_message_is_encoded_once(atomic, broker, cqrs_settings, monkeypatch):
    """The stored row and the broker get the same bytes, made once (default outbox mode)."""
    from django_messaging.cqrs.dataclasses import TransportPayload

    encoded = []
    to_dict = TransportPayload.to_dict
    monkeypatch.setattr(
        TransportPayload, "to_dict", lambda self: encoded.append(self.pk) or to_dict(self)
    )
    if atomic:
        with transaction.atomic():
            product = Product.objects.create(name="once")
    else:
        product = Product.objects.create(name="once")
    assert wait_for_confirms() == 0
    assert encoded == [product.pk]
    assert [m["instance_pk"] for m in messages(broker, cqrs_settings["queue"])] == [product.pk]


def test_a_burst_goes_out_with_one_send(broker, cqrs_settings, monkeypatch):
    """pika writes each frame (method, header, body: three per message) with a send() of its
    own; the publisher thread joins a burst into one."""
    from pika.adapters.utils import io_services_utils

    from django_messaging.cqrs.constants import SignalType
    from django_messaging.cqrs.controller import publisher
    from django_messaging.cqrs.dataclasses import TransportPayload
    from django_messaging.cqrs.transport.base import LINK

    real_send = io_services_utils._AsyncTransportBase._sigint_safe_send
    sends: list[int] = []

    def counting_send(sock, data):
        sends.append(len(data))
        return real_send(sock, data)

    LINK.get(RabbitMQTransport)  # connected before counting
    monkeypatch.setattr(
        io_services_utils._AsyncTransportBase, "_sigint_safe_send", staticmethod(counting_send)
    )
    burst = [
        TransportPayload(SignalType.SAVE, "product", {"id": pk, "name": f"b{pk}"}, pk)
        for pk in range(1, 21)
    ]
    assert publisher._publish_burst(burst)
    assert len(sends) == 1, sends
    assert publisher.wait_for_confirms() == 0
    received = [m["instance_pk"] for m in messages(broker, cqrs_settings["queue"])]
    assert received == list(range(1, 21))


def test_a_burst_waits_while_messages_keep_arriving_and_no_longer(monkeypatch):
    """The publisher thread sends once a LINGER passed without a new message, BURST are
    waiting or STREAM_LINGER passed: the last save of a stream does not wait for the rest of
    STREAM_LINGER."""
    import queue

    from django_messaging.cqrs.controller import publisher

    background = publisher._Background()

    def run(arrivals: list[int]) -> int:
        """``arrivals[i]`` messages arrive during the i-th sleep; returns how many sleeps."""
        background.queue = queue.Queue()
        background.queue.put("first")
        sleeps = []

        def sleep(seconds: float) -> None:
            for _ in range(arrivals[len(sleeps)] if len(sleeps) < len(arrivals) else 0):
                background.queue.put("more")
            sleeps.append(seconds)

        monkeypatch.setattr(publisher.time, "sleep", sleep)
        background._linger()
        assert set(sleeps) <= {publisher.LINGER}
        return len(sleeps)

    assert run([]) == 1  # a single save: one quiet LINGER
    assert run([3, 2, 0, 9]) == 3  # a short stream: until the first quiet LINGER
    whole = round(publisher.STREAM_LINGER / publisher.LINGER)
    assert run([1] * 100) == whole  # a steady stream: STREAM_LINGER in all
    assert run([publisher.BURST]) == 1  # a full burst goes at once


def test_after_a_failed_connect_sends_fail_at_once_until_the_backoff_is_due(
    cqrs_settings, monkeypatch
):
    """One back-off for every sender: a broker that refused the connection is not tried again
    by each message (they are stored at once) until the core Backoff's delay has passed; other
    broker settings are tried at once."""
    from django_messaging.core.reconnect import Backoff
    from django_messaging.cqrs.exceptions import PublishError
    from django_messaging.cqrs.transport.base import Link
    from django_messaging.cqrs.transport.confirming import PikaTransport
    from tests.services import free_port

    monkeypatch.setattr(Link, "RECONNECT", Backoff(initial=60, cap=60))
    opens = []
    real_open = PikaTransport.open
    monkeypatch.setattr(PikaTransport, "open", lambda self: opens.append(1) or real_open(self))
    reachable = cqrs_settings["url"]
    cqrs_settings["url"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    with pytest.raises(PublishError, match="cannot connect"):
        RabbitMQTransport.produce(_payload(5))
    with pytest.raises(PublishError, match="trying again in"):
        RabbitMQTransport.produce(_payload(6))
    assert len(opens) == 1
    cqrs_settings["url"] = reachable
    RabbitMQTransport.produce(_payload(7))  # confirmed (nobody listens on this exchange)
    assert len(opens) == 2
