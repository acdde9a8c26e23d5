"""Helpers for tests: waiting on conditions with a deadline (never fixed sleeps), README examples."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def wait_until(
    condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with what was last seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout}s waiting for {what or condition!r}; last value: {last!r}"
    )


def catches_signal(pid: int, signum: int) -> bool:
    """Has process ``pid`` installed a handler for ``signum`` yet (Linux ``SigCgt``)?

    A command signalled before its worker runtime installed the stop handlers dies by the
    default action; tests that check a graceful stop wait for this first.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    except FileNotFoundError:
        return False
    return False


def readme_section(readme: Path, heading: str = "Testing your code") -> dict[str, Any]:
    """Run the Python blocks of one README section, in order, in one namespace; return it."""
    import re

    text = readme.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"{readme} has no Python example under '{heading}'"
    namespace: dict[str, Any] = {"__name__": f"readme_{readme.parent.name}"}
    for block in blocks:
        exec(compile(block, str(readme), "exec"), namespace)
    return namespace


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def try_scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        return scrape(port)
    except OSError:
        return None


def read_topic(
    bootstrap: str, topic: str, count: int, timeout: float = 15.0, partitions: int | None = None
) -> list[Any]:
    """Read ``count`` messages of ``topic`` from the beginning (assign(), no group)."""
    from confluent_kafka import Consumer as RawConsumer
    from confluent_kafka import TopicPartition

    consumer = RawConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    try:
        if partitions is None:
            meta = consumer.list_topics(topic, timeout=10)
            partitions = len(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    found.append(msg)
        return found
    finally:
        consumer.close()


def skip_with_server_side_binding() -> None:
    """Skip a test of how statements share a round trip on PostgreSQL: with the
    ``server_side_binding`` option they go one by one (a query string with parameters holds one
    statement there)."""
    from django.db import connection

    if connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get(
        "server_side_binding"
    ):
        pytest.skip("server-side binding sends one statement per round trip")
