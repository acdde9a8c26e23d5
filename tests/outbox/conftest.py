from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

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
