"""``publish --metrics-port``: the relay's counters and the outbox gauges, scraped for real."""

from __future__ import annotations

import signal

import pytest

from django_messaging.outbox.models import Published
from tests.helpers import catches_signal, try_scrape, wait_until
from tests.outbox.helpers import topic
from tests.services import free_port

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
    backlog = ("messaging_outbox_backlog", (("database", "default"), ("package", "outbox")))

    def settled() -> dict | None:
        samples = try_scrape(port)
        if samples and samples.get(produced) == 30 and samples.get(backlog) == 0:
            return samples
        return None

    try:
        samples = wait_until(settled, timeout=60, interval=0.5, what="30 produced, backlog 0")
        wait_until(lambda: len(p.messages) >= 30, what="every message on the broker")
        assert (
            samples[("messaging_outbox_failed", (("database", "default"), ("package", "outbox")))]
            == 0
        )
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


def test_subscriber_counters(stomp_address, processes, unique_name) -> None:
    from django_messaging.outbox.factories import factory_producer
    from tests.outbox.stomp_probe import send_raw
    from tests.outbox.test_commands import _queue_exists
    from tests.project.outbox_app.models import Order

    destination, _ = topic(unique_name)
    queue = unique_name("q")
    port = free_port()
    sub = processes.start(
        "subscribe",
        "tests.outbox.callbacks.store_order",
        destination,
        queue,
        "--metrics-port",
        str(port),
        "--metrics-addr",
        "127.0.0.1",
    )
    try:
        wait_until(lambda: sub.poll() is not None or _queue_exists(queue), timeout=30)
        with factory_producer() as producer:
            for number in ("M-1", "M-2", "M-3"):
                producer.send_event(destination, {"number": number})
        # No idempotency header: dead-lettered without calling the callback.
        send_raw(stomp_address, destination, "{}", {})
        consumed = (
            "messaging_messages_consumed_total",
            (("destination", queue), ("package", "outbox")),
        )
        dead = (
            "messaging_messages_dead_lettered_total",
            (("destination", queue), ("package", "outbox")),
        )

        def settled() -> dict | None:
            samples = try_scrape(port)
            if samples and samples.get(consumed) == 3 and samples.get(dead) == 1:
                return samples
            return None

        samples = wait_until(settled, timeout=30, interval=0.3, what="3 consumed, 1 dead letter")
        assert Order.objects.filter(number__startswith="M-").count() == 3
        handler = ("messaging_handler_duration_seconds_count", consumed[1])
        assert samples[handler] == 3
    finally:
        wait_until(lambda: catches_signal(sub.pid, signal.SIGTERM), what="subscriber running")
        sub.send_signal(signal.SIGTERM)
        sub.wait(30)
    assert sub.returncode == 0
