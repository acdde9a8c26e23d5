"""``kafka_consume --metrics-port``: a real scrape of ``/metrics`` while two worker processes
consume, their counters added up, and the lag gauge computed at scrape time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.helpers import scrape, try_scrape, wait_until
from tests.kafka.test_worker import FILE_CONSUMER, lines, start, stop
from tests.services import free_port

pytestmark = pytest.mark.timeout(120)


def test_counters_of_two_workers_and_the_lag_gauge(
    create_topic, group: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    topic = create_topic(partitions=2)
    output = tmp_path / "handled.txt"
    env = {"KAFKA_APP_TOPIC": topic, "KAFKA_APP_GROUP": group, "KAFKA_APP_OUTPUT": str(output)}
    port = free_port()
    proc = start(
        kafka_bootstrap,
        env,
        FILE_CONSUMER,
        "--workers",
        "2",
        "--metrics-port",
        str(port),
        "--metrics-addr",
        "127.0.0.1",
    )
    try:
        before = wait_until(lambda: try_scrape(port), timeout=30, what="/metrics answering")
        consumed = (
            "messaging_messages_consumed_total",
            (("destination", topic), ("package", "kafka")),
        )
        assert consumed not in before
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        sent = 0

        def both_workers_handled() -> bool:
            # One record per batch, to each partition in turn, until both processes (one per
            # partition once the group settled) have handled messages.
            nonlocal sent
            for _ in range(2):
                producer.produce(topic, f"v{sent}".encode(), partition=sent % 2)
                assert producer.flush(10) == 0
                sent += 1
            return len({line[0] for line in lines(output)}) == 2

        wait_until(both_workers_handled, timeout=60, interval=0.2, what="both workers handling")
        wait_until(lambda: len(lines(output)) == sent, timeout=30, what="every message handled")

        def settled() -> dict | None:
            samples = scrape(port)
            lag = [
                value
                for (name, labels), value in samples.items()
                if name == "messaging_kafka_consumer_lag" and ("group", group) in labels
            ]
            done = samples.get(consumed) == sent and lag == [0, 0]
            return samples if done else None

        # Offsets are committed by librdkafka's auto-commit (every 5 s by default).
        samples = wait_until(settled, timeout=30, interval=0.5, what="counters and lag settled")
        batches = samples[
            ("messaging_batch_duration_seconds_count", (("package", "kafka"), ("stage", "consume")))
        ]
        assert batches >= 2  # at least one batch per worker
        assert samples[("messaging_status_up", (("package", "kafka"), ("service", "kafka")))] == 1
    finally:
        assert stop(proc) == 0


def test_metrics_port_without_prometheus_client_is_a_usage_error(monkeypatch) -> None:
    from django.core.management import call_command

    from django_messaging.core import metrics
    from django_messaging.core.commands import UsageError

    # The extra not installed (the one thing the test environment cannot show for real).
    monkeypatch.setattr(metrics, "available", lambda: False)
    with pytest.raises(UsageError, match=r"django-messaging\[metrics\]") as raised:
        call_command("kafka_consume", FILE_CONSUMER, "--metrics-port", "9")
    assert raised.value.returncode == 2


def test_help_names_the_metrics_port() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "kafka_consume",
            "--help",
            "--settings",
            "tests.project.settings",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--metrics-port PORT" in result.stdout
