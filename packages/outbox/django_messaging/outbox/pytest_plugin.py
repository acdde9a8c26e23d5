"""pytest fixture ``messaging_outbox``: capture and delivery of outbox messages (entry point
``pytest11``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_messaging.outbox.testing import OutboxBroker


@pytest.fixture
def messaging_outbox() -> Iterator[OutboxBroker]:
    """``flush()`` sends the committed outbox rows into memory, ``deliver()`` hands them to a
    subscriber callback."""
    from django_messaging.outbox.testing import OutboxBroker

    with OutboxBroker() as broker:
        yield broker
