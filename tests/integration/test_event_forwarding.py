"""Events out of the store into an idempotent Kafka consumer: ``forward_events`` as its own
process, SIGKILLed after the broker confirmed a page and before the page's position was
recorded; started again, it sends exactly the unrecorded events again, and the consumer
applies each event once, in notification order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from django.db import connection, transaction

from django_messaging.eventstore.conf import application_env
from django_messaging.eventstore.forwarder import EventForwarder
from django_messaging.eventstore.management.commands.forward_events import (
    kafka_transport,
    named_transport,
)
from django_messaging.eventstore.recorders import DjangoTrackingRecorder
from django_messaging.kafka.topic import TopicConsumer
from tests import services
from tests.helpers import read_topic, wait_until
from tests.kafka.conftest import make_consumer, make_topic, run_until
from tests.project.eventstore_app.domain import TrainingSchool
from tests.project.kafka_app.models import Handled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
BATCH = 20


def start(topic: str, name: str, bootstrap: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "forward_events",
            "tests.project.eventstore_app.domain.TrainingSchool",
            "--kafka",
            topic,
            "--name",
            name,
            "--batch-size",
            str(BATCH),
            "--poll-interval",
            "0.05",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.outbox.subprocess_settings",
            services.KAFKA_BOOTSTRAP_ENV: bootstrap,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def end_offset(bootstrap: str, topic: str) -> int:
    """How many records the one-partition ``topic`` holds."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"end-{uuid.uuid4().hex}"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def tricks(school: TrainingSchool, count: int) -> None:
    dog = f"dog-{uuid.uuid4().hex[:6]}"
    school.register(dog)
    for n in range(count - 1):
        school.add_trick(dog, f"trick {n}")


def lock_tracking(name: str) -> None:
    """Inside a transaction: make the forwarder's next record of its position wait until the
    transaction ends (its row locked; SQLite: the database's one write lock)."""
    table = connection.ops.quote_name("messaging_eventstore_tracking")
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"UPDATE {table} SET notification_id = notification_id")
        else:
            cursor.execute(
                f"SELECT notification_id FROM {table} WHERE application_name = %s FOR UPDATE",
                [name],
            )
            assert cursor.fetchone() is not None


def test_sigkill_between_confirm_and_record_redelivers_only_the_unrecorded(
    kafka_bootstrap, unique_name
) -> None:
    topic, name = unique_name("events"), unique_name("forwarder")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1)]).values():
        future.result(10)
    school = TrainingSchool(env=application_env())
    tracking = DjangoTrackingRecorder(name)
    tricks(school, 2 * BATCH)

    def position() -> int | None:
        return tracking.max_tracking_id("TrainingSchool")

    first = start(topic, name, kafka_bootstrap)
    try:
        wait_until(lambda: position() == 2 * BATCH, timeout=60, what="the first 40 recorded")
        first.send_signal(signal.SIGSTOP)  # caught up and idle: it only reads now
        tricks(school, 3 * BATCH)
        with transaction.atomic():
            lock_tracking(name)
            first.send_signal(signal.SIGCONT)
            # It sends the next pages (two in flight), the broker confirms 41-60, the record
            # of 60 waits for us.
            wait_until(
                lambda: len(read_topic(kafka_bootstrap, topic, 3 * BATCH, timeout=1)) >= 3 * BATCH,
                timeout=60,
                what="the page 41-60 on the topic",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert position() == 2 * BATCH
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    # Started again (its worker, in this process): from the recorded position.
    second = EventForwarder(
        school,
        partial(kafka_transport, kafka_bootstrap, False),
        topic,
        name=name,
        batch_size=BATCH,
        poll_interval=0.01,
    )
    second.start()
    try:
        wait_until(
            lambda: (second.run_once(), position() == 5 * BATCH)[1],
            timeout=60,
            interval=0,
            what="all 100 recorded",
        )
    finally:
        second.stop()
    records = read_topic(kafka_bootstrap, topic, end_offset(kafka_bootstrap, topic))
    ids = [json.loads(r.value())["id"] for r in records]
    # Before the kill: 1-60, and 61-80 too if the page in flight behind it got through. After
    # the restart: everything from 41, the first notification not recorded, in order.
    before_kill = len(ids) - 3 * BATCH
    assert 3 * BATCH <= before_kill <= 4 * BATCH
    assert ids == list(range(1, before_kill + 1)) + list(range(2 * BATCH + 1, 5 * BATCH + 1))

    def consume(self, msg):  # type: ignore[no-untyped-def]
        Handled.objects.create(topic=msg.topic(), value=str(json.loads(msg.value())["id"]))

    consumer_topic = make_topic(TopicConsumer, topic, consume=consume, idempotent=True)
    consumer = make_consumer(unique_name("g"), consumer_topic())()
    run_until(consumer, lambda: consumer.messages_handled() == len(ids), timeout=60)
    applied = [
        int(v)
        for v in Handled.objects.filter(topic=topic).order_by("id").values_list("value", flat=True)
    ]
    assert applied == list(range(1, 5 * BATCH + 1))


def test_to_a_stomp_destination_through_the_outbox_transport(rabbitmq_url) -> None:
    """``--transport django_messaging.outbox.transports.stomp.StompTransport``: the outbox's
    STOMP transport, named by its dotted path (the event store does not import the outbox)."""
    import pika

    queue = f"forward-stomp-{uuid.uuid4().hex[:10]}"
    channel = pika.BlockingConnection(pika.URLParameters(rabbitmq_url)).channel()
    channel.queue_declare(queue, durable=True, auto_delete=False)
    school = TrainingSchool(env=application_env())
    tricks(school, 3)
    worker = EventForwarder(
        school,
        partial(named_transport, "django_messaging.outbox.transports.stomp.StompTransport"),
        f"/queue/{queue}",
        name=f"forward:stomp:{queue}",
        poll_interval=0.01,
    )
    worker.start()
    try:
        wait_until(
            lambda: (worker.run_once(), worker.position == 3)[1],
            timeout=30,
            interval=0,
            what="three confirmed by STOMP receipts",
        )
    finally:
        worker.stop()
    got = []

    def three() -> bool:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            got.append((properties.headers or {}, json.loads(body)))
        return len(got) == 3

    try:
        wait_until(three, timeout=20, interval=0.01, what="three messages in the queue")
    finally:
        channel.queue_delete(queue)
        channel.connection.close()
    assert [body["id"] for _, body in got] == [1, 2, 3]
    assert got[0][0]["dop-msg-id"] == "TrainingSchool:1"
