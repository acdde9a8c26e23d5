"""Drive relays and subscribers in the test's own thread, with deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from django_messaging.core.worker import Worker


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
