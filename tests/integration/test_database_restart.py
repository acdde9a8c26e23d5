"""PostgreSQL itself stopped for 10 s and started again under running workers, while messages
keep arriving: the CQRS replica (``cqrs_consume -w 2``) and the outbox subscriber (``subscribe``)
wait for the database, then apply every message exactly once; nothing is dead-lettered, no
worker dies, and both stop cleanly on SIGTERM afterwards.

The workers use a PostgreSQL server of this test's own (the shared one must never be restarted
under other runs); run by ``nox -s faults``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg
import pytest

from tests import services
from tests.helpers import wait_until
from tests.outbox.stomp_probe import send_raw

pytestmark = pytest.mark.server_restart

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 150  # per package, spread over about 30 s
OUTAGE = 10.0


@pytest.fixture
def server() -> Iterator[services.PrivatePostgres]:
    try:
        server = services.start_private_postgres()
    except services.ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.destroy()


def _query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(f"{url.rsplit('/', 1)[0]}/{DB}", connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


DB = f"restart_{uuid.uuid4().hex[:8]}"


def _cqrs_body(pk: int) -> bytes:
    return json.dumps(
        {
            "signal_type": "SAVE",
            "cqrs_id": "product",
            "instance_data": {
                "id": pk,
                "name": f"product {pk}",
                "price": "1.50",
                "cqrs_revision": 0,
                "cqrs_updated": dt.datetime.now(dt.UTC).isoformat(),
            },
            "previous_data": None,
            "instance_pk": pk,
            "correlation_id": None,
            "retries": 0,
            "expires": None,
            "meta": None,
        }
    ).encode()


def test_workers_ride_out_a_postgresql_restart(server, unique_name, stomp_address, tmp_path):
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB}"')
    exchange, cqrs_queue = unique_name("restart-x"), unique_name("restart-q")
    destination, outbox_queue = f"/topic/{unique_name('restart')}", unique_name("restart-sub")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.project.settings",
        "MESSAGING_TEST_DB": "postgres",
        "MESSAGING_POSTGRES_URL": server.url,
        "MESSAGING_TEST_DB_NAME": DB,
        "MESSAGING_CQRS_EXCHANGE": exchange,
        "MESSAGING_CQRS_QUEUE": cqrs_queue,
        "MESSAGING_LOG_LEVEL": "INFO",
    }
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("replica", "subscriber")}
    commands = {
        "replica": ["cqrs_consume", "-w", "2"],
        "subscriber": [
            "subscribe",
            "tests.outbox.callbacks.store_order",
            destination,
            outbox_queue,
        ],
    }
    workers = {}
    for name, argv in commands.items():
        with logs[name].open("wb") as out:  # the child keeps its own descriptor
            workers[name] = subprocess.Popen(
                [sys.executable, "-m", "django", *argv],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(name: str) -> str:
        return logs[name].read_text(errors="replace")

    try:
        for name, queue in (("replica", cqrs_queue), ("subscriber", outbox_queue)):
            proc = workers[name]
            wait_until(
                lambda: proc.poll() is not None or services.amqp_queue_depth(queue) is not None,  # noqa: B023
                timeout=60,
                what=f"the {name}'s queue",
            )
            assert proc.poll() is None, f"{name} exited:\n{output(name)[-3000:]}"
        amqp = pika.BlockingConnection(pika.URLParameters(services.RABBITMQ_URL))
        channel = amqp.channel()

        sent = threading.Event()
        failures: list[BaseException] = []

        def feed() -> None:
            try:
                send_all()
            except BaseException as exc:
                failures.append(exc)
                raise

        def send_all() -> None:
            for i in range(1, MESSAGES + 1):
                channel.basic_publish(
                    exchange=exchange,
                    routing_key="product",
                    body=_cqrs_body(i),
                    properties=pika.BasicProperties(delivery_mode=2),
                )
                send_raw(
                    stomp_address,
                    destination,
                    json.dumps({"number": f"order-{i}"}),
                    {"dop-msg-id": f"{outbox_queue}-{i}"},
                )
                time.sleep(0.2)
            sent.set()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        wait_until(
            lambda: failures or _count(server, "test_cqrs_productref") >= 10,
            timeout=60,
            what="replication",
        )
        assert not failures, failures
        server.stop()
        outage_started = time.monotonic()
        time.sleep(OUTAGE)  # the outage itself, while the feeder goes on
        for name, proc in workers.items():
            assert proc.poll() is None, f"{name} died during the outage:\n{output(name)[-3000:]}"
        server.start()
        recovered_in = time.monotonic() - outage_started - OUTAGE
        wait_until(lambda: failures or sent.is_set(), timeout=120, what="every message sent")
        assert not failures, failures
        amqp.close()

        def done() -> bool:
            return (
                _count(server, "test_cqrs_productref") == MESSAGES
                and _count(server, "messaging_outbox_received") == MESSAGES
            )

        wait_until(done, timeout=120, what="every message applied after the restart")
        orders = _query(
            server.url, "SELECT number, COUNT(*) FROM test_outbox_order GROUP BY number"
        )
        assert sorted(n for n, _ in orders) == sorted(f"order-{i}" for i in range(1, MESSAGES + 1))
        assert all(count == 1 for _, count in orders), "an order was stored twice"
        assert _depth(f"dead_letter_{cqrs_queue}") == 0, output("replica")[-3000:]
        assert _depth(f"DLQ.{outbox_queue}") == 0, output("subscriber")[-3000:]
        assert _depth(cqrs_queue) == 0 and _depth(outbox_queue) == 0
        for name, proc in workers.items():
            assert proc.poll() is None, f"{name} died:\n{output(name)[-3000:]}"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, f"{name}:\n{output(name)[-3000:]}"
        print(f"workers caught up; the server was back {recovered_in:.1f}s after the outage")
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        _delete_queues(cqrs_queue, f"dead_letter_{cqrs_queue}", outbox_queue, f"DLQ.{outbox_queue}")
        _delete_exchange(exchange)


def _depth(name: str) -> int:
    return services.amqp_queue_depth(name) or 0  # a queue never declared holds nothing


def _count(server: services.PrivatePostgres, table: str) -> int:
    try:
        return int(_query(server.url, f"SELECT COUNT(*) FROM {table}")[0][0])
    except psycopg.OperationalError:
        return -1  # the server is away


def _delete_queues(*names: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(services.RABBITMQ_URL))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(queue=name)
    finally:
        connection.close()


def _delete_exchange(name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(services.RABBITMQ_URL))
    try:
        connection.channel().exchange_delete(exchange=name)
    finally:
        connection.close()
