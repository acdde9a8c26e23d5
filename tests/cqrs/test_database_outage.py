"""A database outage under a CQRS worker: the replica waits and retries, never dead-letters for
it; the master keeps the confirmations it could not record and records them when it is back.

The worker processes reach PostgreSQL through a TcpProxy (the server is shared and must not be
restarted): ``cut()`` is the outage, ``restore()`` the end of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from tests import services
from tests.cqrs.conftest import ROOT, db_env, messages
from tests.helpers import wait_until
from tests.project.cqrs_app.models import Product, ProductRef
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    if connection.vendor != "postgresql":
        pytest.skip("the outage is simulated on PostgreSQL's TCP connection")
    parts = services.url_parts(services.POSTGRES_URL)
    proxy = TcpProxy((str(parts["host"]), int(parts["port"] or 5432))).start()
    yield proxy
    proxy.stop()


def through(proxy: TcpProxy) -> str:
    """MESSAGING_POSTGRES_URL of a worker process that reaches PostgreSQL through ``proxy``."""
    url = urlsplit(services.POSTGRES_URL)
    netloc = url.netloc.rsplit("@", 1)[0] + "@" if "@" in url.netloc else ""
    return urlunsplit(url._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))


@pytest.mark.parametrize(
    ("cqrs_transport", "transport"),
    [
        ("rabbitmq", "RabbitMQTransport"),
        ("rabbitmq", "KombuTransport"),
        ("kafka", "KafkaTransport"),
    ],
    indirect=["cqrs_transport"],
)
def test_the_replica_waits_for_the_database_and_never_dead_letters_for_it(
    consumer, wire, cqrs_settings, pg_proxy, transport
):
    """With the database away, a message used up its retries (0.2 s apart in the test
    settings) and went to the dead letter queue, to be applied never."""
    replica = consumer(
        workers=1,
        MESSAGING_POSTGRES_URL=through(pg_proxy),
        MESSAGING_CQRS_TRANSPORT=f"django_messaging.cqrs.transport.{transport}",
    )
    before = Product.objects.create(name="before the outage")
    wait_until(
        lambda: ProductRef.objects.filter(pk=before.pk).exists(), timeout=40, what="first row"
    )

    pg_proxy.cut()
    during = Product.objects.create(name="during the outage")
    wait_until(
        lambda: "database unavailable" in replica.output() or wire.dead_letter_count(),
        what="the replica to meet the outage",
    )
    # Several times what the retries take (2 retries, 0.2 s apart): nothing is dead-lettered.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert wire.dead_letter_count() == 0, replica.output()
        time.sleep(0.1)
    pg_proxy.restore()

    wait_until(
        lambda: ProductRef.objects.filter(pk=during.pk, name="during the outage").exists(),
        timeout=30,
        what="the change made during the outage",
    )
    assert wire.dead_letter_count() == 0
    output = replica.output()
    assert ("(kombu)" in output) == (transport == "KombuTransport")
    assert output.count("database unavailable") == 1, output
    assert "Traceback" not in output, output
    assert replica.proc.poll() is None
    assert replica.terminate() == 0
    assert wire.backlog() == 0


def test_the_master_deletes_confirmed_rows_once_the_database_is_back(
    broker, cqrs_settings, pg_proxy, tmp_path, capsys
):
    """The delete of confirmed rows failed with a traceback and the confirmations were dropped:
    up to a few hundred rows stayed pending, to be sent once more by the relay."""
    from django_messaging.cqrs.models import PendingMessage

    log = tmp_path / "master.log"
    env = {
        **os.environ,
        **db_env(),
        "PYTHONPATH": str(ROOT),
        "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
        "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
        "MESSAGING_LOG_LEVEL": "INFO",
        "MESSAGING_POSTGRES_URL": through(pg_proxy),
    }
    stop_file = tmp_path / "stop"
    with log.open("ab") as out:  # the child keeps its own descriptor
        master = subprocess.Popen(
            [sys.executable, "-m", "tests.cqrs.outage_master", str(stop_file)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "saved 30" in log.read_text(), timeout=60, what="saves before")
        pg_proxy.cut()
        wait_until(
            lambda: "could not delete" in log.read_text(), timeout=30, what="a failed delete"
        )
        pg_proxy.restore()
        resumed = log.read_text().count("saved ") + 3
        wait_until(
            lambda: log.read_text().count("saved ") >= resumed, timeout=60, what="saves after"
        )
        stop_file.touch()
        assert master.wait(timeout=60) == 0
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
    output = log.read_text()
    result = json.loads(output.strip().splitlines()[-1])
    assert result["failed"] >= 1, output

    # Every change is in the replica queue, once; a row left pending is one whose commit the
    # master never saw succeed (the connection was cut during the COMMIT): never sent at all.
    received: dict[int, list[int]] = defaultdict(list)
    for body in messages(broker, cqrs_settings["queue"]):
        received[int(body["instance_pk"])].append(body["instance_data"]["cqrs_revision"])
    pending = Counter(
        int(pk) for pk in PendingMessage.objects.values_list("instance_pk", flat=True)
    )
    duplicates = sum(len(r) - len(set(r)) for r in received.values())
    with capsys.disabled():
        print(
            f"\nmaster: {result}; rows left pending: {sum(pending.values())}; "
            f"messages received: {sum(map(len, received.values()))}; duplicates: {duplicates}"
        )
    assert duplicates == 0
    for pk, revision in Product.objects.values_list("pk", "cqrs_revision"):
        assert len(received[pk]) + pending[pk] == revision + 1, (pk, received[pk], pending[pk])
    assert sum(pending.values()) <= result["failed"], output
    # One line for the outage, no traceback per batch.
    assert "Traceback" not in output, output
    assert output.count("could not delete") == 1, output


def test_the_relay_logs_an_outage_once_and_sends_what_is_stored_when_it_is_back(
    broker, cqrs_settings, pg_proxy, tmp_path
):
    """``cqrs_pending run`` logged a traceback on every flush while the database was away."""
    from django_messaging.cqrs.models import PendingMessage
    from django_messaging.cqrs.transport import RabbitMQTransport

    log = tmp_path / "relay.log"
    env = {
        **os.environ,
        **db_env(),
        "PYTHONPATH": str(ROOT),
        "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
        "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
        "MESSAGING_LOG_LEVEL": "INFO",
        "MESSAGING_POSTGRES_URL": through(pg_proxy),
    }
    with log.open("ab") as out:  # the child keeps its own descriptor
        relay = subprocess.Popen(
            [
                *(sys.executable, "-m", "django", "cqrs_pending", "run"),
                *("--interval", "0.1", "--settings", "tests.project.settings"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: pg_proxy.connections >= 1, timeout=30, what="the relay's first read")
        pg_proxy.cut()
        # A change the broker did not take is stored, to be sent by the relay.
        good_url = cqrs_settings["url"]
        cqrs_settings["url"] = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens there
        RabbitMQTransport.clean_connection()
        stored = Product.objects.create(name="stored while the relay's database was away")
        cqrs_settings["url"] = good_url
        assert PendingMessage.objects.count() == 1
        wait_until(lambda: "could not read" in log.read_text(), what="the relay to meet the cut")
        deadline = time.monotonic() + 2  # some twenty flushes
        while time.monotonic() < deadline:
            assert relay.poll() is None, log.read_text()
            time.sleep(0.1)
        pg_proxy.restore()
        wait_until(lambda: not PendingMessage.objects.exists(), timeout=30, what="the flush")
        (body,) = messages(broker, cqrs_settings["queue"])
        assert body["instance_pk"] == stored.pk
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=30) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    output = log.read_text()
    assert output.count("could not read") == 1, output
    assert "Traceback" not in output, output


@pytest.mark.django_db(transaction=False)
def test_only_the_database_being_away_counts_as_an_outage():
    """A refused or lost connection holds the batch; an error of the request itself (a statement
    timeout, a lock timeout) is the message's failure and goes through the retries."""
    from django import db

    from django_messaging.cqrs.transport import outage

    away = db.OperationalError(
        'connection to server at "127.0.0.1", port 5 failed: Connection refused'
    )
    closed = db.InterfaceError("connection already closed")
    timeout = db.OperationalError("canceling statement due to statement timeout")
    locked = db.OperationalError("database is locked")
    wrapped = RuntimeError("apply failed")
    wrapped.__cause__ = away
    assert outage.is_transient(away) and outage.is_transient(closed)
    assert outage.is_transient(wrapped)
    assert not outage.is_transient(timeout)
    assert not outage.is_transient(locked)
    assert not outage.is_transient(db.IntegrityError("duplicate key"))


@pytest.mark.django_db(transaction=False)
def test_outage_waits_grow_with_jitter_up_to_the_cap():
    from django import db

    from django_messaging.cqrs.transport import outage

    waits = []
    tracker = outage.DatabaseOutage()
    for _ in range(8):
        before = time.monotonic()
        tracker.failed(db.InterfaceError("connection already closed"), 1)
        waits.append(tracker.retry_at - before)
    assert 0.2 <= waits[0] <= 0.55
    assert all(w <= outage.RETRY.cap + 0.05 for w in waits)
    assert waits[-1] >= outage.RETRY.cap / 2
    tracker.recovered()
    assert tracker.remaining() == 0.0
