"""A real RabbitMQ restart (``rabbitmqctl stop_app`` / ``start_app``) while the relay and a
subscriber run as processes: nothing is lost and both carry on by themselves.

The broker is shared with other test sessions: the restart holds ``/tmp/rabbitmq-restart.lock``
(``fcntl.flock``), keeps the outage to the few seconds it takes both processes to notice it,
and always starts the application again.
Run alone with ``pytest -m broker_restart tests/outbox`` (``nox -s faults``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published, Received
from tests import services
from tests.helpers import wait_until
from tests.outbox.helpers import topic
from tests.project.outbox_app.models import Order

pytestmark = [
    pytest.mark.broker_restart,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

ROOT = Path(__file__).resolve().parents[2]


def _start(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A management command of the test project, logging to a file (no pipe to fill up)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.outbox.subprocess_settings",
                "MESSAGING_LOG_LEVEL": "INFO",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _queue_exists(name: str) -> bool:
    from tests.outbox.conftest import queue_depth

    try:
        queue_depth(name)
    except AssertionError:
        return False
    return True


class Feeder(threading.Thread):
    """Writes outbox rows in small committed batches, as an application would, until stopped."""

    def __init__(self, destination: str, per_batch: int = 10, pause: float = 0.02) -> None:
        super().__init__(name="outbox-feeder", daemon=True)
        self.destination = destination
        self.per_batch = per_batch
        self.pause = pause
        self.written = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                Published.objects.bulk_create(
                    Published(destination=self.destination, body={"number": f"R-{i}"})
                    for i in range(self.written, self.written + self.per_batch)
                )
                self.written += self.per_batch
                self._stop_event.wait(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connection.close()

    def stop(self) -> int:
        self._stop_event.set()
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error
        return self.written


def _sent() -> int:
    return Published.objects.filter(status=StatusChoice.SUCCEEDED).count()


def test_rabbitmq_restart_loses_nothing_and_relay_and_subscriber_resume(
    stomp_address, unique_name, tmp_path
) -> None:
    """django-outbox-pattern 0.9.0 marks a row sent as soon as its (receipt-less, transient)
    SEND returns, so what was written just before the broker stopped is lost. Here rows are
    written all along, before, during and after the outage; every one ends up confirmed and
    processed exactly once, and both processes reconnect by themselves."""
    destination, _ = topic(unique_name)
    queue = unique_name("q")
    logs = {name: tmp_path / f"{name}.log" for name in ("subscriber", "relay")}
    procs = []
    feeder = Feeder(destination)
    try:
        sub = _start(
            logs["subscriber"],
            "subscribe",
            "tests.outbox.callbacks.store_order",
            destination,
            queue,
        )
        procs.append(sub)
        wait_until(lambda: sub.poll() is not None or _queue_exists(queue), timeout=30)
        assert sub.poll() is None, logs["subscriber"].read_text()[-3000:]
        relay = _start(logs["relay"], "publish", "--batch-size", "20")
        procs.append(relay)
        feeder.start()
        wait_until(lambda: _sent() >= 100, timeout=60, what="the relay to be sending")

        with services.rabbitmq_stopped([stomp_address]):
            # The broker stays down until both processes failed to reconnect at least once.
            wait_until(
                lambda: (
                    "cannot reach the broker" in logs["relay"].read_text()
                    and "cannot connect (attempt" in logs["subscriber"].read_text()
                ),
                timeout=30,
                interval=0.2,
                what="the relay and the subscriber to notice the outage",
            )
            written, sent = feeder.written, _sent()
        assert sent < written, "the outage did not hold anything back"
        # Both resume: rows written after the restart go through too.
        wait_until(lambda: feeder.written >= written + 100, timeout=30, what="more rows")
        total = feeder.stop()

        wait_until(lambda: _sent() == total, timeout=90, interval=0.2, what="every row sent")
        wait_until(
            lambda: Order.objects.count() >= total,
            timeout=90,
            interval=0.2,
            what="every message processed by the subscriber",
        )
        numbers = list(Order.objects.values_list("number", flat=True))
        assert sorted(numbers) == sorted(f"R-{i}" for i in range(total))  # none lost, none twice
        assert Received.objects.count() == total
        assert not Published.objects.exclude(status=StatusChoice.SUCCEEDED).exists()
        assert relay.poll() is None, logs["relay"].read_text()[-3000:]
        assert sub.poll() is None, logs["subscriber"].read_text()[-3000:]
        relay_log = logs["relay"].read_text()
        assert "reconnected after" in relay_log, relay_log[-3000:]
        sub_log = logs["subscriber"].read_text()
        assert "reconnected" in sub_log, sub_log[-3000:]
        for name, proc in (("relay", relay), ("subscriber", sub)):
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                code = None
            assert code == 0, f"{name} did not stop on SIGTERM:\n{logs[name].read_text()[-3000:]}"
    finally:
        if feeder.is_alive():
            feeder.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
