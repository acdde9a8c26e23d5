"""pytest fixtures of django-messaging, loaded by pytest itself (entry point ``pytest11``).

Each installed distribution adds its own fixtures the same way:

| fixture | distribution | what it yields |
|---|---|---|
| ``messaging_transport`` | django-messaging | a :class:`~django_messaging.testing.MemoryTransport` |
| ``messaging_kafka`` | django-messaging-kafka | an active ``KafkaBroker`` |
| ``messaging_outbox`` | django-messaging-outbox | an ``OutboxBroker`` |
| ``messaging_cqrs`` | django-messaging-cqrs | an active ``CqrsBroker`` |
| ``messaging_follow`` | django-messaging-eventstore | ``follow(runner=None, *followers)`` |

Where entry points are not loaded (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), name the plugins in a
``conftest.py``: ``pytest_plugins = ["django_messaging.testing.pytest",
"django_messaging.kafka.pytest_plugin", "django_messaging.outbox.pytest_plugin",
"django_messaging.cqrs.pytest_plugin", "django_messaging.eventstore.pytest_plugin"]``. Modules are imported when a fixture is used,
never when pytest starts, so Django need not be set up yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_messaging.testing import MemoryTransport


@pytest.fixture
def messaging_transport() -> MemoryTransport:
    """A transport of the core seam that records what it is sent and confirms it at once."""
    from django_messaging.testing import MemoryTransport

    return MemoryTransport()
