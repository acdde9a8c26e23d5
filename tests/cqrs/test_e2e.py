"""Master and replica as separate processes over real RabbitMQ; ``@over_transports`` tests
run over Kafka (the Tansu broker) too."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from decimal import Decimal

import pytest
from django.db import transaction

from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.publishing import wait_for_confirms
from django_messaging.cqrs.transport import RabbitMQTransport
from tests.cqrs.conftest import ROOT, over_transports
from tests.helpers import wait_until
from tests.project.cqrs_app.models import (
    DirectOnly,
    DirectOnlyRef,
    Poison,
    PoisonRef,
    Product,
    ProductRef,
)

pytestmark = pytest.mark.django_db(transaction=True)


@over_transports
def test_create_update_delete_replicate_to_a_separate_process(consumer, wire):
    replica = consumer(workers=1)
    product = Product.objects.create(
        name="desk",
        price=Decimal("1234.567891"),
        day=dt.date(2026, 12, 2),
        at=dt.time(6, 45, 23, 123456),
        duration=dt.timedelta(days=1, microseconds=7),
        blob=b"\x00\xffbinary",
    )
    row = wait_until(
        lambda: ProductRef.objects.filter(pk=product.pk).first(), timeout=40, what="replica row"
    )
    assert row.price == Decimal("1234.567891")
    assert row.at == dt.time(6, 45, 23, 123456)
    assert row.duration == dt.timedelta(days=1, microseconds=7)
    assert bytes(row.blob) == b"\x00\xffbinary"
    assert row.day == dt.date(2026, 12, 2)
    assert row.cqrs_revision == 0

    with transaction.atomic():
        product.name = "big desk"
        product.save()
        product.save()
    wait_until(
        lambda: ProductRef.objects.filter(pk=product.pk, name="big desk", cqrs_revision=1).exists(),
        what="update",
    )
    product.delete()
    wait_until(lambda: not ProductRef.objects.filter(pk=product.pk).exists(), what="delete")
    assert replica.terminate() == 0
    assert wire.backlog() == 0


def _replicated(expected: dict) -> bool:
    have = dict(ProductRef.objects.values_list("pk", "name"))
    return have == expected


@over_transports
def test_kill_and_restart_the_consumer_mid_stream_with_two_workers(consumer, wire):
    """Nothing is lost and the newest revision wins across SIGKILL and -w 2."""
    replica = consumer(workers=2)
    products = [Product.objects.create(name=f"p{i}") for i in range(40)]
    for round_no in range(3):
        for product in products:
            product.name = f"p{product.pk}-r{round_no}"
            product.save()
        if round_no == 0:
            wait_until(lambda: ProductRef.objects.exists(), timeout=40, what="first rows")
            replica.kill()
            replica = consumer(workers=2)
    for product in products[::5]:
        product.delete()
    expected = {p.pk: p.name for p in products if p.pk is not None}
    wait_until(lambda: _replicated(expected), timeout=40, what="replica converged")
    assert set(ProductRef.objects.values_list("cqrs_revision", flat=True)) == {3}
    assert replica.terminate() == 0


def test_sigterm_finishes_and_exits_zero(consumer, broker):
    replica = consumer(workers=1)
    Product.objects.create(name="before-stop")
    wait_until(lambda: ProductRef.objects.filter(name="before-stop").exists(), what="row")
    assert replica.terminate() == 0
    assert "stopped cleanly" in replica.output()


def _close_our_connections(*pids: int) -> int:
    """Close the broker connections of these processes only: other test runs share the broker."""
    names = {f"django-messaging-cqrs pid {pid}" for pid in pids}
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    closed = 0
    for line in listing.splitlines():
        if any(f'"{name}"' in line for name in names):
            subprocess.run(
                ["rabbitmqctl", "close_connection", line.split()[0], "test: broker went away"],
                capture_output=True,
                timeout=30,
                check=False,
            )
            closed += 1
    return closed


def test_connections_dropped_by_the_broker_are_reopened(consumer, broker):
    """Stands in for a broker restart: the broker closes every connection of ours."""
    replica = consumer(workers=1)
    Product.objects.create(name="one")
    wait_until(lambda: ProductRef.objects.filter(name="one").exists(), what="first row")
    # the master's publisher (this process) and the consumer (one worker: no child process)
    assert _close_our_connections(os.getpid(), replica.proc.pid) >= 2
    Product.objects.create(name="two")
    wait_until(lambda: ProductRef.objects.filter(name="two").exists(), timeout=30, what="second")
    assert "connection lost" in replica.output()
    assert replica.terminate() == 0


@over_transports
def test_poison_messages_end_in_the_dead_letter_queue(consumer, wire, cqrs_settings):
    replica = consumer(workers=1)
    queue = cqrs_settings["queue"]
    for body in (b"not json", b"[1, 2]", b'{"signal_type": "SAVE"}'):
        wire.publish_raw("product", body)
    wire.publish_raw(
        "product",
        b'{"signal_type":"SAVE","cqrs_id":"unknown","instance_data":{},"instance_pk":1}',
    )
    pill = Poison.objects.create(name="poison pill")
    good = Poison.objects.create(name="fine")
    wait_until(lambda: wire.dead_letter_count() == 5, timeout=40, what="5 dead letters")
    assert PoisonRef.objects.filter(pk=good.pk).exists()
    pill.cqrs_sync(queue=queue)  # a direct SYNC that fails too
    wait_until(lambda: wire.dead_letter_count() == 6, timeout=30, what="6 dead letters")
    letters = wire.dead_letters()
    assert len(letters) == 6
    for headers, _body in letters:
        assert headers["x-cqrs-error"]
    after = Poison.objects.create(name="after the pill")  # later messages keep flowing
    wait_until(lambda: PoisonRef.objects.filter(pk=after.pk).exists(), what="a later message")
    saved = next(json.loads(b) for h, b in letters if b"poison pill" in b and b'"SAVE"' in b)
    assert saved["retries"] == 2  # MESSAGING_CQRS_MAX_RETRIES in the test settings
    # The direct SYNC keeps its queue, so that `cqrs_dead_letters retry` sends it back as direct.
    (synced,) = [h for h, b in letters if b'"SYNC"' in b]
    assert synced["x-cqrs-queue"] == queue
    assert replica.terminate() == 0
    assert wire.backlog() == 0


def test_only_direct_syncs_over_the_wire(consumer, cqrs_settings):
    """``CQRS_ONLY_DIRECT_SYNCS``: the replica process recognises a SYNC sent to its queue (by
    its routing key) and ignores a broadcast one (django-cqrs ignored both)."""
    replica = consumer(workers=1)
    row = DirectOnly.objects.create(name="v1")
    wait_until(
        lambda: DirectOnlyRef.objects.filter(pk=row.pk, name="v1").exists(), timeout=40, what="row"
    )
    DirectOnlyRef.objects.filter(pk=row.pk).update(name="drifted")
    assert row.cqrs_sync() is True
    marker = Product.objects.create(name="after the broadcast sync")
    wait_until(lambda: ProductRef.objects.filter(pk=marker.pk).exists(), what="the marker")
    assert DirectOnlyRef.objects.get(pk=row.pk).name == "drifted"
    assert row.cqrs_sync(queue=cqrs_settings["queue"]) is True
    wait_until(
        lambda: DirectOnlyRef.objects.filter(pk=row.pk, name="v1").exists(), what="direct sync"
    )
    assert replica.terminate() == 0


def test_unpublished_changes_are_stored_and_sent_later(consumer, broker, cqrs_settings):
    good_url = cqrs_settings["url"]
    cqrs_settings["url"] = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens there
    RabbitMQTransport.clean_connection()
    lost = Product.objects.create(name="while the broker was unreachable")
    assert PendingMessage.objects.count() == 1
    cqrs_settings["url"] = good_url
    replica = consumer(workers=1)
    Product.objects.create(name="after")
    wait_until(
        lambda: ProductRef.objects.filter(pk=lost.pk).exists(), timeout=20, what="stored change"
    )
    wait_for_confirms()  # the confirmed rows are deleted in batches
    # A save whose confirm was late on a loaded machine is stored too, and sent the same way.
    wait_until(lambda: PendingMessage.objects.count() == 0, timeout=30, what="no stored change")
    assert replica.terminate() == 0


def test_one_hot_row_ends_at_its_last_revision_with_two_workers(consumer, broker):
    """Two workers share the queue: whatever order they apply in, the newest revision wins."""
    replica = consumer(workers=2)
    product = Product.objects.create(name="v0")
    for i in range(1, 61):
        product.name = f"v{i}"
        product.save()
    wait_until(
        lambda: ProductRef.objects.filter(pk=product.pk, name="v60", cqrs_revision=60).exists(),
        timeout=30,
        what="last revision",
    )
    assert replica.terminate() == 0


def test_a_killed_worker_is_restarted_by_the_supervisor(consumer, broker):
    replica = consumer(workers=2)
    children = wait_until(lambda: _children(replica.proc.pid, 2), what="two workers")
    os.kill(children[0], signal.SIGKILL)
    wait_until(
        lambda: (kids := _children(replica.proc.pid, 2)) and children[0] not in kids,
        timeout=20,
        what="a new worker",
    )
    product = Product.objects.create(name="after the restart")
    wait_until(lambda: ProductRef.objects.filter(pk=product.pk).exists(), what="row")
    assert replica.terminate() == 0


def _children(pid: int, count: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(p) for p in found.split()]
    return kids if len(kids) >= count else []


def test_reload_restarts_the_consumer_when_a_python_file_changes(consumer, tmp_path):
    """``cqrs_consume --reload``: a saved change restarts it gracefully; a broken one waits."""
    watched = tmp_path / "reload_settings.py"

    ahead = iter(range(2, 100, 2))

    def write(text: str) -> None:
        watched.write_text(text)
        later = time.time() + next(ahead)  # a new mtime even within one clock tick
        os.utime(watched, (later, later))

    write("from tests.project.settings import *  # noqa: F403\n")
    replica = consumer(
        args=["--reload"],
        settings="reload_settings",
        PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}",
    )
    Product.objects.create(name="before")
    wait_until(lambda: ProductRef.objects.filter(name="before").exists(), what="first row")

    write("raise RuntimeError('a half-written settings file')\n")
    wait_until(lambda: "waiting for a change" in replica.output(), timeout=30, what="wait")
    write("from tests.project.settings import *  # noqa: F403\n")
    Product.objects.create(name="after")
    wait_until(lambda: ProductRef.objects.filter(name="after").exists(), timeout=30, what="second")
    output = replica.output()
    assert output.count("reload_settings.py changed: restarting") == 2
    children = [int(pid) for pid in re.findall(r"\(pid (\d+) runs the command\)", output)]
    assert len(children) == 3
    assert replica.terminate() == 0
    for pid in children:  # none orphaned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
