from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest

from tests.outbox.stomp_probe import Probe
from tests.proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def probe(stomp_address: tuple[str, int]) -> Iterator[Callable[..., Probe]]:
    made: list[Probe] = []

    def make(destination: str, queue: str | None = None, durable: bool = False) -> Probe:
        p = Probe(stomp_address, destination, queue, durable)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    from tests.outbox import callbacks

    callbacks.calls.clear()


def queue_depth(name: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of a queue, from the broker itself."""
    done = subprocess.run(
        [
            "rabbitmqctl",
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for line in done.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"queue {name} does not exist")


@pytest.fixture
def proxy(stomp_address: tuple[str, int]) -> Iterator[TcpProxy]:
    p = TcpProxy(stomp_address).start()
    yield p
    p.stop()


class Processes:
    """Management commands of the test project run as real processes on the test database."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.outbox.subprocess_settings",
                "MESSAGING_LOG_LEVEL": "INFO",
                **(env or {}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    p = Processes()
    yield p
    p.stop_all()


class Output:
    """Collects a process's output on a thread, so the test can read it while it runs."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                self.lines.append(line)
        except (OSError, ValueError):  # closed when the test stops the process
            return

    @property
    def text(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def database_proxy():
    """A proxy in front of PostgreSQL, for a worker process to connect through."""
    from django.conf import settings

    from tests import services
    from tests.proxy import TcpProxy

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("cuts a PostgreSQL connection")
    proxy = TcpProxy(services.host_port(services.POSTGRES_URL, 5432)).start()
    yield proxy
    proxy.stop()


def through(proxy) -> dict[str, str]:
    """Environment of a worker process whose database connections go through ``proxy``."""
    return {"MESSAGING_POSTGRES_URL": f"postgres://postgres@127.0.0.1:{proxy.port}/postgres"}


@pytest.fixture
def exchange(
    rabbitmq_url: str,
) -> Iterator[tuple[str, pika.adapters.blocking_connection.BlockingChannel]]:
    """A direct exchange of this test (auto-deleted) and a channel to inspect it."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    name = f"outbox-{uuid.uuid4().hex[:10]}"
    channel.exchange_declare(name, "direct", auto_delete=True)
    yield name, channel
    channel.exchange_delete(name)
    connection.close()
