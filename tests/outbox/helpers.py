"""Drive relays and subscribers in the test's own thread, with deadlines."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from django_messaging.core.worker import Worker
from tests.helpers import catches_signal, wait_until


def outbox_settings(**values: Any) -> override_settings:
    """``MESSAGING["OUTBOX"]`` with ``values`` over the test project's."""
    from django.conf import settings

    return override_settings(
        MESSAGING={**settings.MESSAGING, "OUTBOX": {**settings.MESSAGING["OUTBOX"], **values}}
    )


def drive(worker: Worker, until: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Call ``worker.run_once()`` until ``until()`` is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        worker.run_once()
        last = until()
        if last:
            return last
    pytest.fail(f"timed out after {timeout}s waiting for {what or until!r}; last: {last!r}")


def topic(unique_name: Callable[[str], str]) -> tuple[str, str]:
    """A fresh ``/topic/<key>`` destination and its routing key."""
    key = unique_name("ob").replace("-", "_")
    return f"/topic/{key}", key


def assert_gives_up_the_broker_at_once(
    proc: subprocess.Popen[str], output: Any, within: float = 5.0
) -> None:
    """SIGTERM ``proc`` once its worker loop handles it: it exits 0 within ``within``
    seconds, saying that it gave up a wait on the broker (``output``: its collected output)."""
    wait_until(lambda: catches_signal(proc.pid, signal.SIGTERM), what="the worker running")
    asked = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    waited = time.monotonic() - asked
    assert code == 0, output.text
    assert waited < within, f"exited {waited:.1f}s after SIGTERM:\n{output.text}"
    assert "stop requested while waiting" in output.text
