"""``publish --metrics-port``: the relay's counters and the outbox gauges, scraped for real."""

from __future__ import annotations

import signal

import pytest

from django_messaging.outbox.models import Published
from tests.helpers import catches_signal, free_port, try_scrape, wait_until
from tests.outbox.helpers import topic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_relay_counters_and_backlog_gauge(stomp_address, probe, processes, unique_name) -> None:
    destination, _ = topic(unique_name)
    p = probe(destination)
    Published.objects.bulk_create(
        Published(destination=destination, body={"i": i}) for i in range(30)
    )
    port = free_port()
    relay = processes.start(
        "publish", "--workers", "2", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1"
    )
    produced = (
        "messaging_messages_produced_total",
        (("destination", destination), ("package", "outbox")),
    )
    backlog = ("messaging_outbox_backlog", (("package", "outbox"),))

    def settled() -> dict | None:
        samples = try_scrape(port)
        if samples and samples.get(produced) == 30 and samples.get(backlog) == 0:
            return samples
        return None

    try:
        samples = wait_until(settled, timeout=60, interval=0.5, what="30 produced, backlog 0")
        wait_until(lambda: len(p.messages) >= 30, what="every message on the broker")
        assert samples[("messaging_outbox_failed", (("package", "outbox"),))] == 0
        assert (
            samples[
                (
                    "messaging_batch_duration_seconds_count",
                    (("package", "outbox"), ("stage", "relay_send")),
                )
            ]
            >= 1
        )
        assert (
            samples[("messaging_status_up", (("package", "outbox"), ("service", "database")))] == 1
        )
    finally:
        # SIGTERM: the supervisor stops its workers (a SIGKILL would leave them running).
        wait_until(lambda: catches_signal(relay.pid, signal.SIGTERM), what="relay running")
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
    assert relay.returncode == 0
