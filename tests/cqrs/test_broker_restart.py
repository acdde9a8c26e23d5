"""RabbitMQ itself restarted (``rabbitmqctl stop_app`` / ``start_app``) under a live master and
replica. Deselected from the normal sessions (``-m broker_restart``, run serially): the restart
breaks every other test using the broker at that moment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.publishing import wait_for_confirms
from tests import services
from tests.cqrs.conftest import ROOT, db_env, queue_depth
from tests.helpers import wait_until
from tests.project.cqrs_app.models import Product, ProductRef

pytestmark = [pytest.mark.broker_restart, pytest.mark.django_db(transaction=True)]


def _amqp_ready(url: str) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception:
        return False
    return True


def restart_rabbitmq(url: str) -> float:
    """Stop and start RabbitMQ's application; returns how long AMQP was unavailable."""
    wait_until(lambda: _amqp_ready(url), timeout=60, what="RabbitMQ before the restart")
    started = time.monotonic()
    with services.rabbitmq_stopped():
        pass
    wait_until(lambda: _amqp_ready(url), timeout=60, what="AMQP after start_app")
    return time.monotonic() - started


def _master(stop_file: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.cqrs.restart_master", str(stop_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
        text=True,
    )


def test_master_and_replica_survive_a_broker_restart(consumer, broker, cqrs_settings, tmp_path):
    """Saves made before, during and after the outage all reach the replica, at their last
    revision; the consumer process stays up and resumes by itself."""
    # On SQLite the master and the replica write one file: the replica's writes may find it
    # locked for a while (a lock timeout is the message's failure, retried), which is not what
    # this test is about, so the replica gets retries enough to outlast that.
    replica = consumer(workers=1, MESSAGING_CQRS_MAX_RETRIES="30")
    env = {
        **replica.env,
        **db_env(),
        "PYTHONPATH": str(ROOT),
        "MESSAGING_LOG_LEVEL": "INFO",
    }
    stop_file = tmp_path / "stop"
    master_log = tmp_path / "master.log"
    master = _master(stop_file, env, master_log)
    try:
        wait_until(lambda: ProductRef.objects.count() >= 10, timeout=60, what="replication")
        outage = restart_rabbitmq(cqrs_settings["url"])
        before = Product.objects.count()
        wait_until(
            lambda: Product.objects.count() >= before + 20, timeout=60, what="saves after restart"
        )
        stop_file.touch()
        out, _ = master.communicate(timeout=120)
    finally:
        if master.poll() is None:
            master.kill()
            master.wait(timeout=10)
    report = json.loads(out.strip().splitlines()[-1])
    assert master.returncode == 0, master_log.read_text()
    assert report["pending"] == 0, master_log.read_text()
    expected = {pk: f"{name}" for pk, name in Product.objects.values_list("pk", "name")}
    assert len(expected) == report["saved"]
    assert all(name.endswith("updated") for name in expected.values())
    # The master hit the outage: it stored changes it could not publish, and sent them later.
    assert "stored to send later" in master_log.read_text(), f"outage {outage:.1f}s missed"

    def caught_up() -> bool:
        have = dict(ProductRef.objects.filter(cqrs_revision=1).values_list("pk", "name"))
        return have == expected

    wait_until(caught_up, timeout=90, what="replica at every product's last revision")
    assert not PendingMessage.objects.exists()
    # A message whose confirm the outage took is sent again: such duplicates may arrive after
    # the replica caught up, and it takes them too (read on a new connection: the fixture's
    # channel died with the broker).
    wait_until(lambda: _depth(cqrs_settings) == 0, timeout=60, what="the queue drained")
    assert replica.proc.poll() is None, replica.output()
    # It saw the connection go (and reconnected at once, or after failed tries while the
    # broker was still down).
    output = replica.output()
    assert "connection lost to" in output or "cannot consume" in output, output
    assert replica.terminate() == 0


def _depth(cqrs_settings: dict) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(cqrs_settings["url"]))
    try:
        return queue_depth(connection.channel(), cqrs_settings["queue"])
    finally:
        connection.close()


def test_a_backlog_survives_a_broker_restart(consumer, broker, cqrs_settings):
    """Persistent messages in the durable queue, published with confirms, outlive the broker
    application; a consumer started afterwards applies every one of them."""
    products = [Product.objects.create(name=f"backlog {i}") for i in range(50)]
    assert wait_for_confirms() == 0
    assert not PendingMessage.objects.exists()
    assert queue_depth(broker, cqrs_settings["queue"]) == 50
    restart_rabbitmq(cqrs_settings["url"])
    assert _depth(cqrs_settings) == 50
    # The master's connection died with the broker: the next save reconnects.
    late = Product.objects.create(name="after the restart")
    assert wait_for_confirms() == 0
    replica = consumer(workers=1)
    expected = {p.pk for p in [*products, late]}
    wait_until(
        lambda: set(ProductRef.objects.values_list("pk", flat=True)) == expected,
        timeout=60,
        what="backlog applied",
    )
    assert not PendingMessage.objects.exists()
    assert replica.terminate() == 0
