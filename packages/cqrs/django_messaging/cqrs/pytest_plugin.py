"""pytest fixture ``messaging_cqrs``: CQRS messages captured and applied in memory (entry point
``pytest11``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_messaging.cqrs.testing import CqrsBroker


@pytest.fixture
def messaging_cqrs() -> Iterator[CqrsBroker]:
    """The master publishes into memory for the whole test; ``deliver()`` applies it."""
    from django_messaging.cqrs.testing import CqrsBroker

    with CqrsBroker() as broker:
        yield broker
