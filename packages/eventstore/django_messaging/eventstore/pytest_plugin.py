"""pytest fixture ``messaging_follow``: bring followers up to date in the test (entry point
``pytest11``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def messaging_follow() -> Callable[..., dict[str, dict[str, int]]]:
    """:func:`django_messaging.eventstore.testing.follow`."""
    from django_messaging.eventstore.testing import follow

    def run(runner: Any = None, *followers: str) -> dict[str, dict[str, int]]:
        return follow(runner, *followers)

    return run
