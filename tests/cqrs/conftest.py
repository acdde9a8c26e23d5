"""Fixtures of the cqrs tests: a private exchange and queue per test, a replica subprocess."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pika
import pytest
from django.db import connection

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


KAFKA_TRANSPORT = "django_messaging.cqrs.transport.KafkaTransport"
#: The Kafka transport's settings in the tests: two partitions, so that ``-w 2`` shares them.
KAFKA_SETTINGS = {"TOPIC_PARTITIONS": 2}
#: Runs a test once per transport: ``@over_transports`` (the fixture ``cqrs_transport``).
over_transports = pytest.mark.parametrize("cqrs_transport", ["rabbitmq", "kafka"], indirect=True)


@pytest.fixture
def cqrs_transport(request: pytest.FixtureRequest) -> str:
    """``rabbitmq``, or the transport a test is parametrized over (``@over_transports``)."""
    return str(getattr(request, "param", "rabbitmq"))


@pytest.fixture
def cqrs_settings(
    settings: Any,
    unique_name: Callable[[str], str],
    rabbitmq_url: str,
    cqrs_transport: str,
    request: pytest.FixtureRequest,
) -> Iterator[dict]:
    """Point MESSAGING['CQRS'] at a new exchange and queue (Kafka: topics named after them);
    yields the CQRS dict (editable)."""
    if cqrs_transport == "kafka":
        request.getfixturevalue("kafka_broker")  # fills in MESSAGING['KAFKA'] first
    messaging = copy.deepcopy(settings.MESSAGING)
    cqrs = messaging["CQRS"]
    cqrs["url"] = rabbitmq_url
    cqrs["exchange"] = unique_name("cqrs-x")
    cqrs["queue"] = unique_name("cqrs-q")
    cqrs["transport"] = "django_messaging.cqrs.transport.RabbitMQTransport"
    if cqrs_transport == "kafka":
        cqrs["transport"] = KAFKA_TRANSPORT
        cqrs["KAFKA"] = dict(KAFKA_SETTINGS)
    settings.MESSAGING = messaging
    from django_messaging.cqrs.controller import producer
    from django_messaging.cqrs.publishing import wait_for_confirms
    from django_messaging.cqrs.transport import RabbitMQTransport

    producer._maybe_pending.clear()
    yield cqrs
    if cqrs_transport == "kafka":
        from django_messaging.cqrs.transport.kafka import KafkaTransport

        KafkaTransport.clean_connection()
        return  # the topics are this test's own, on the session's in-memory broker
    # What the publisher thread still holds belongs to this test (its database, its exchange).
    wait_for_confirms(timeout=5)
    RabbitMQTransport.clean_connection()
    _delete_topology(rabbitmq_url, cqrs["exchange"], cqrs["queue"])


@pytest.fixture(autouse=True)
def _forget_confirmed() -> Iterator[None]:
    """Confirmed rows not yet deleted belong to this test's database, gone after it."""
    yield
    from django_messaging.cqrs.controller import producer

    producer._confirmed.clear()
    producer._delete_outage = producer._DeleteOutage()


def _delete_topology(url: str, exchange: str, queue: str) -> None:
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except Exception:
        return
    try:
        channel = conn.channel()
        for name in (
            queue,
            f"dead_letter_{queue}",
            *(f"{queue}.delay.{ms}" for ms in (0, 200, 3000)),
        ):
            channel.queue_delete(queue=name)
        channel.exchange_delete(exchange=exchange)
        conn.close()
    except Exception:
        pass


@pytest.fixture
def produced(settings: Any) -> Iterator[list[Any]]:
    """What the master hands to the transport, captured by ``CqrsBroker`` (nothing is sent)."""
    from django_messaging.cqrs.testing import CqrsBroker

    settings.MESSAGING = copy.deepcopy(settings.MESSAGING)
    with CqrsBroker() as captured:
        yield captured.payloads


@pytest.fixture
def broker(cqrs_settings: dict) -> Iterator[Any]:
    """A pika channel with the test's replica topology declared (so nothing published is lost)."""
    from django_messaging.cqrs.registries import ReplicaRegistry
    from django_messaging.cqrs.transport.rabbit_mq import declare_replica_topology

    conn = pika.BlockingConnection(pika.URLParameters(cqrs_settings["url"]))
    channel = conn.channel()
    declare_replica_topology(channel, list(ReplicaRegistry.models))
    yield channel
    try:
        conn.close()
    except Exception:
        pass


def queue_depth(channel: Any, queue: str) -> int:
    return channel.queue_declare(queue=queue, passive=True).method.message_count


class RabbitWire:
    """The test's view of its broker, whatever the transport: RabbitMQ."""

    def __init__(self, channel: Any, cqrs: dict) -> None:
        self.channel = channel
        self.cqrs = cqrs

    def env(self) -> dict[str, str]:
        """What a ``cqrs_consume`` subprocess needs beyond the queue and exchange."""
        return {}

    def publish_raw(self, cqrs_id: str, body: bytes) -> None:
        """A message the master did not write (garbage, an unknown CQRS id) to the replica."""
        self.channel.basic_publish(exchange="", routing_key=self.cqrs["queue"], body=body)

    def backlog(self) -> int:
        """Messages for the replica not consumed yet."""
        return queue_depth(self.channel, self.cqrs["queue"])

    def dead_letter_count(self) -> int:
        return queue_depth(self.channel, f"dead_letter_{self.cqrs['queue']}")

    def dead_letters(self) -> list[tuple[dict, bytes]]:
        """Every dead letter: (headers, body)."""
        letters = []
        while True:
            _method, props, body = self.channel.basic_get(
                f"dead_letter_{self.cqrs['queue']}", auto_ack=True
            )
            if body is None:
                return letters
            letters.append((props.headers or {}, body))


class KafkaWire:
    """The test's view of its broker, whatever the transport: Kafka (topics of this test)."""

    def __init__(self, bootstrap: str, cqrs: dict) -> None:
        self.bootstrap = bootstrap
        self.cqrs = cqrs
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap})

    def env(self) -> dict[str, str]:
        import json

        from tests import services

        return {
            "MESSAGING_CQRS_TRANSPORT": KAFKA_TRANSPORT,
            services.KAFKA_BOOTSTRAP_ENV: self.bootstrap,
            "MESSAGING_CQRS_KAFKA": json.dumps(self.cqrs.get("KAFKA", {})),
        }

    def topic(self, cqrs_id: str) -> str:
        return f"{self.cqrs['exchange']}.{cqrs_id}"

    def publish_raw(self, cqrs_id: str, body: bytes) -> None:
        self.producer.produce(self.topic(cqrs_id), body, key=b"raw")
        assert self.producer.flush(10) == 0

    def records(self, topic: str, group: str | None = None) -> list[Any]:
        """Every record of ``topic`` (from its committed offsets in ``group``, if given)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": group or f"reader-{os.getpid()}",
                "enable.auto.commit": False,
            }
        )
        try:
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return []
            partitions = [TopicPartition(topic, p) for p in metadata.partitions]
            if group:
                start = consumer.committed(partitions, timeout=10)
                for p in start:
                    if p.offset < 0:
                        p.offset = OFFSET_BEGINNING
            else:
                start = [TopicPartition(topic, p.partition, OFFSET_BEGINNING) for p in partitions]
            # Read up to each partition's end as it is now: an empty poll under load is no end.
            marks = {p.partition: consumer.get_watermark_offsets(p, timeout=10) for p in start}
            ends = {partition: high for partition, (_, high) in marks.items()}
            todo = {
                p.partition
                for p in start
                if max(p.offset, marks[p.partition][0]) < ends[p.partition]
            }
            consumer.assign(start)
            found = []
            deadline = time.monotonic() + 30
            while todo and time.monotonic() < deadline:
                for m in consumer.consume(100, timeout=0.5):
                    if m.error() is None:
                        found.append(m)
                        if m.offset() + 1 >= ends[m.partition()]:
                            todo.discard(m.partition())
            return found
        finally:
            consumer.close()

    def backlog(self) -> int:
        topics = [self.topic(cqrs_id) for cqrs_id in ("product", "poison")]
        return sum(len(self.records(t, self.cqrs["queue"])) for t in topics)

    def dead_letter_count(self) -> int:
        return len(self.records(f"dead_letter_{self.cqrs['queue']}"))

    def dead_letters(self) -> list[tuple[dict, bytes]]:
        return [
            ({k: v.decode() for k, v in m.headers() or ()}, m.value())
            for m in self.records(f"dead_letter_{self.cqrs['queue']}")
        ]


@pytest.fixture
def wire(
    cqrs_settings: dict, cqrs_transport: str, request: pytest.FixtureRequest
) -> Iterator[RabbitWire | KafkaWire]:
    """The test's broker (``@over_transports``: RabbitMQ or Kafka), topology ready."""
    if cqrs_transport != "kafka":
        yield RabbitWire(request.getfixturevalue("broker"), cqrs_settings)
        return
    kafka = KafkaWire(request.getfixturevalue("kafka_bootstrap"), cqrs_settings)
    yield kafka
    kafka.producer = None  # its client goes now, not after the session's broker


def db_env() -> dict[str, str]:
    """Environment that makes a subprocess of the test project use this test's database."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return {"MESSAGING_TEST_DB": "sqlite", "MESSAGING_SQLITE_PATH": str(name)}
    kind = "mariadb" if connection.vendor == "mysql" else "postgres"
    return {"MESSAGING_TEST_DB": kind, "MESSAGING_TEST_DB_NAME": str(name)}


class Consumer:
    def __init__(
        self,
        env: dict[str, str],
        workers: int,
        args: Sequence[str] = (),
        settings: str = "tests.project.settings",
    ) -> None:
        self.env = env
        self.workers = workers
        self.args = list(args)
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self.log = Path(env["CQRS_LOG"])

    def start(self) -> Consumer:
        # The child writes to its own copy of the descriptor: ours is closed at once.
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "cqrs_consume",
                    "-w",
                    str(self.workers),
                    *self.args,
                    "--settings",
                    self.settings,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def consumer(cqrs_settings: dict, wire: Any, tmp_path: Path) -> Iterator[Callable[..., Consumer]]:
    """``consumer(workers=2)`` starts ``cqrs_consume`` in a subprocess on this test's queue."""
    started: list[Consumer] = []

    def start(
        workers: int = 1,
        args: Sequence[str] = (),
        settings: str = "tests.project.settings",
        **extra_env: str,
    ) -> Consumer:
        env = {
            **os.environ,
            **db_env(),
            "PYTHONPATH": str(ROOT),
            "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
            "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
            "MESSAGING_LOG_LEVEL": "INFO",
            "CQRS_LOG": str(tmp_path / f"consumer-{len(started)}.log"),
            **wire.env(),
            **extra_env,
        }
        process = Consumer(env, workers, args, settings).start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            os.killpg(process.proc.pid, signal.SIGKILL)
            process.proc.wait(timeout=10)


__all__ = ["Consumer", "queue_depth", "wait_until"]


def drain(
    until: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "",
    consumer_class: Any = None,
) -> None:
    """Run a consumer (default: ``RabbitMQConsumer``) in this process until ``until()`` holds
    (or fail at the deadline)."""
    import time

    from django_messaging.cqrs.transport.rabbit_mq import RabbitMQConsumer

    worker = (consumer_class or RabbitMQConsumer)()
    worker.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            worker.run_once()
            if until():
                return
        pytest.fail(f"timed out after {timeout}s draining the queue for {what or until!r}")
    finally:
        worker.stop()


def messages(channel: Any, queue: str) -> list[dict]:
    """Take every message off ``queue``; their JSON bodies."""
    import json

    bodies = []
    while True:
        _method, _props, body = channel.basic_get(queue, auto_ack=True)
        if body is None:
            return bodies
        bodies.append(json.loads(body))
