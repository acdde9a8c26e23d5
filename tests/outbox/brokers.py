"""Helpers of the tests that relay the outbox to Kafka and AMQP."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import defaultdict

from confluent_kafka.admin import AdminClient, NewTopic
from django.test import override_settings

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.decorators import NewRow, insert_outbox_rows
from django_messaging.outbox.models import Published
from tests.helpers import read_topic, wait_until


def outbox_with(transports: dict) -> override_settings:
    from django.conf import settings

    return override_settings(
        MESSAGING={
            **settings.MESSAGING,
            "OUTBOX": {**settings.MESSAGING["OUTBOX"], "TRANSPORTS": transports},
        }
    )


def kafka_transport(bootstrap: str) -> dict:
    """A kafka transport of the test broker (named in OPTIONS: the KAFKA section is absent when
    the outbox is tested alone)."""
    return {"BACKEND": "kafka", "OPTIONS": {"bootstrap.servers": bootstrap}}


def new_topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"outbox-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions)]).values():
        future.result(10)
    return name


def read_distinct(bootstrap: str, name: str, count: int, timeout: float = 20.0) -> list:
    """The records of topic ``name`` once ``count`` distinct values arrived."""
    deadline = time.monotonic() + timeout
    want = count
    while True:
        records = read_topic(bootstrap, name, want, timeout=max(deadline - time.monotonic(), 1))
        distinct = len({r.value() for r in records})
        if distinct >= count or time.monotonic() > deadline:
            return records
        want = len(records) + count - distinct


def keyed_rows(transport: str, destination: str, keys: int, per_key: int) -> None:
    """``keys * per_key`` rows, keys interleaved, in commit order ``seq``."""
    rows = [
        NewRow(destination, None, {"key": f"k{n % keys}", "seq": n}, transport, f"k{n % keys}")
        for n in range(keys * per_key)
    ]
    for start in range(0, len(rows), 200):
        insert_outbox_rows("default", rows[start : start + 200])


def sent(transport: str) -> int:
    return Published.objects.filter(transport=transport, status=StatusChoice.SUCCEEDED).count()


def assert_per_key_order(seen: list[tuple[str, int]], total: int, in_flight: int) -> None:
    """Every message arrived; for each key, first arrivals in commit order; duplicates only
    of what was in flight when a relay died."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, seq in seen:
        by_key[key].append(seq)
    firsts = []
    for key, seqs in by_key.items():
        first = list(dict.fromkeys(seqs))
        assert first == sorted(first), (key, first)
        firsts += first
    assert sorted(firsts) == list(range(total))
    assert len(seen) - total <= in_flight, (len(seen) - total, in_flight)


def relay_env(transports: dict, kafka_bootstrap: str = "") -> dict[str, str]:
    return {
        "MESSAGING_OUTBOX_TRANSPORTS": json.dumps(transports),
        "MESSAGING_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MESSAGING_OUTBOX_CLAIM_TIMEOUT": "2",
    }


def kill_one_of_two_relays(processes, env, transport, total) -> int:  # type: ignore[no-untyped-def]
    """Two relays of ``transport``; SIGKILL one mid-way, start another; return how many rows
    the killed one held."""
    args = ("publish", "--transport", transport, "--batch-size", "20")
    first = processes.start(*args, env=env)
    processes.start(*args, env=env)
    wait_until(lambda: sent(transport) >= total // 10, timeout=60, what="the relays to be sending")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert sent(transport) < total, "the relays finished before one could be killed"
    held = Published.objects.filter(
        transport=transport, status=StatusChoice.SCHEDULE, claimed_by__isnull=False
    ).count()
    processes.start(*args, env=env)
    wait_until(lambda: sent(transport) == total, timeout=60, what="every row sent")
    return held


def bound_queue(channel, exchange_name: str, routing_key: str) -> str:  # type: ignore[no-untyped-def]
    queue = f"{exchange_name}-{routing_key}"
    channel.queue_declare(queue, auto_delete=True, arguments={"x-expires": 600000})
    channel.queue_bind(queue, exchange_name, routing_key)
    return queue


def drain(channel, queue: str, count: int, timeout: float = 20.0) -> list:  # type: ignore[no-untyped-def]
    """Messages of ``queue`` until ``count`` distinct bodies arrived (and what came with them)."""
    found = []
    deadline = time.monotonic() + timeout
    while len({body for _, body in found}) < count and time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        found.append((properties, body))
    return found
