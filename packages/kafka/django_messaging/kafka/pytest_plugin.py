"""pytest fixture ``messaging_kafka``: an in-memory Kafka for the test (entry point ``pytest11``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_messaging.kafka.testing import KafkaBroker


@pytest.fixture
def messaging_kafka() -> Iterator[KafkaBroker]:
    """Topics produce into memory and consumers read from it for the whole test."""
    from django_messaging.kafka.testing import KafkaBroker

    with KafkaBroker() as broker:
        yield broker
