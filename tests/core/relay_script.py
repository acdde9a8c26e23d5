"""The core relay over :class:`tests.core.relay_store.KeyedStore` and the STOMP transport, as a
process of its own: ``python -m tests.core.relay_script BATCH_SIZE LEASE_SECONDS``.

Run with ``DJANGO_SETTINGS_MODULE=tests.outbox.subprocess_settings`` (the test database).
"""

from __future__ import annotations

import sys

import django

django.setup()

from django_messaging.core.relay import Relay, RelayPolicy  # noqa: E402
from django_messaging.core.worker import run_worker  # noqa: E402
from django_messaging.outbox.transports.stomp import StompTransport  # noqa: E402
from tests.core.relay_store import KeyedStore  # noqa: E402

if __name__ == "__main__":
    batch_size, lease = int(sys.argv[1]), float(sys.argv[2])
    policy = RelayPolicy(batch_size=batch_size, lease=lease, idle_wait=0.05)
    run_worker(Relay(KeyedStore(), StompTransport(), policy))
