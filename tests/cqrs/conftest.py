"""Fixtures of the cqrs tests: a private exchange and queue per test, a replica subprocess."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pika
import pytest
from django.db import connection

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cqrs_settings(
    settings: Any, unique_name: Callable[[str], str], rabbitmq_url: str
) -> Iterator[dict]:
    """Point MESSAGING['CQRS'] at a new exchange and queue; yields the CQRS dict (editable)."""
    messaging = copy.deepcopy(settings.MESSAGING)
    cqrs = messaging["CQRS"]
    cqrs["url"] = rabbitmq_url
    cqrs["exchange"] = unique_name("cqrs-x")
    cqrs["queue"] = unique_name("cqrs-q")
    cqrs["transport"] = "django_messaging.cqrs.transport.RabbitMQTransport"
    settings.MESSAGING = messaging
    from django_messaging.cqrs.controller import producer
    from django_messaging.cqrs.publishing import wait_for_confirms
    from django_messaging.cqrs.transport import RabbitMQTransport

    producer._maybe_pending.clear()
    yield cqrs
    # What the publisher thread still holds belongs to this test (its database, its exchange).
    wait_for_confirms(timeout=5)
    RabbitMQTransport.clean_connection()
    _delete_topology(rabbitmq_url, cqrs["exchange"], cqrs["queue"])


@pytest.fixture(autouse=True)
def _forget_confirmed() -> Iterator[None]:
    """Confirmed rows not yet deleted belong to this test's database, gone after it."""
    yield
    from django_messaging.cqrs.controller import producer

    producer._confirmed.clear()
    producer._delete_outage = producer._DeleteOutage()


def _delete_topology(url: str, exchange: str, queue: str) -> None:
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except Exception:
        return
    try:
        channel = conn.channel()
        for name in (
            queue,
            f"dead_letter_{queue}",
            *(f"{queue}.delay.{ms}" for ms in (0, 200, 3000)),
        ):
            channel.queue_delete(queue=name)
        channel.exchange_delete(exchange=exchange)
        conn.close()
    except Exception:
        pass


@pytest.fixture
def produced(settings: Any) -> Iterator[list[Any]]:
    """What the master hands to the transport, captured by ``CqrsBroker`` (nothing is sent)."""
    from django_messaging.cqrs.testing import CqrsBroker

    settings.MESSAGING = copy.deepcopy(settings.MESSAGING)
    with CqrsBroker() as captured:
        yield captured.payloads


@pytest.fixture
def broker(cqrs_settings: dict) -> Iterator[Any]:
    """A pika channel with the test's replica topology declared (so nothing published is lost)."""
    from django_messaging.cqrs.registries import ReplicaRegistry
    from django_messaging.cqrs.transport.rabbit_mq import declare_replica_topology

    conn = pika.BlockingConnection(pika.URLParameters(cqrs_settings["url"]))
    channel = conn.channel()
    declare_replica_topology(channel, list(ReplicaRegistry.models))
    yield channel
    try:
        conn.close()
    except Exception:
        pass


def queue_depth(channel: Any, queue: str) -> int:
    return channel.queue_declare(queue=queue, passive=True).method.message_count


def db_env() -> dict[str, str]:
    """Environment that makes a subprocess of the test project use this test's database."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return {"MESSAGING_TEST_DB": "sqlite", "MESSAGING_SQLITE_PATH": str(name)}
    return {"MESSAGING_TEST_DB": "postgres", "MESSAGING_TEST_DB_NAME": str(name)}


class Consumer:
    def __init__(
        self,
        env: dict[str, str],
        workers: int,
        args: Sequence[str] = (),
        settings: str = "tests.project.settings",
    ) -> None:
        self.env = env
        self.workers = workers
        self.args = list(args)
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self.log = Path(env["CQRS_LOG"])

    def start(self) -> Consumer:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "cqrs_consume",
                "-w",
                str(self.workers),
                *self.args,
                "--settings",
                self.settings,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def consumer(cqrs_settings: dict, broker: Any, tmp_path: Path) -> Iterator[Callable[..., Consumer]]:
    """``consumer(workers=2)`` starts ``cqrs_consume`` in a subprocess on this test's queue."""
    started: list[Consumer] = []

    def start(
        workers: int = 1,
        args: Sequence[str] = (),
        settings: str = "tests.project.settings",
        **extra_env: str,
    ) -> Consumer:
        env = {
            **os.environ,
            **db_env(),
            "PYTHONPATH": str(ROOT),
            "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
            "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
            "MESSAGING_LOG_LEVEL": "INFO",
            "CQRS_LOG": str(tmp_path / f"consumer-{len(started)}.log"),
            **extra_env,
        }
        process = Consumer(env, workers, args, settings).start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            os.killpg(process.proc.pid, signal.SIGKILL)
            process.proc.wait(timeout=10)


__all__ = ["Consumer", "queue_depth", "wait_until"]


def drain(
    until: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "",
    consumer_class: Any = None,
) -> None:
    """Run a consumer (default: ``RabbitMQConsumer``) in this process until ``until()`` holds
    (or fail at the deadline)."""
    import time

    from django_messaging.cqrs.transport.rabbit_mq import RabbitMQConsumer

    worker = (consumer_class or RabbitMQConsumer)()
    worker.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            worker.run_once()
            if until():
                return
        pytest.fail(f"timed out after {timeout}s draining the queue for {what or until!r}")
    finally:
        worker.stop()


def messages(channel: Any, queue: str) -> list[dict]:
    """Take every message off ``queue``; their JSON bodies."""
    import json

    bodies = []
    while True:
        _method, _props, body = channel.basic_get(queue, auto_ack=True)
        if body is None:
            return bodies
        bodies.append(json.loads(body))
