"""``forward_events``: an application's notification log to Kafka (Tansu) and RabbitMQ (AMQP) in
order, JSON or the stored bytes, the position recorded only once the broker confirmed, a broker
outage waited out, an undecodable event stopped at or forwarded flagged."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from django.core.management import call_command
from django.core.management.base import CommandError
from eventsourcing.persistence import StoredEvent

from django_messaging.core.reconnect import Backoff
from django_messaging.core.transports.amqp import AmqpTransport
from django_messaging.core.transports.kafka import KafkaTransport
from django_messaging.eventstore.conf import application_env
from django_messaging.eventstore.forwarder import (
    EventForwarder,
    UndecodableEvent,
    _KafkaMessages,
    notification_message,
)
from django_messaging.eventstore.recorders import DjangoTrackingRecorder
from tests.helpers import read_topic, wait_until
from tests.project.eventstore_app.domain import Dog, TrainingSchool
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

SCHOOL = "tests.project.eventstore_app.domain.TrainingSchool"
FAST = Backoff(initial=0.05, cap=0.2)


def drive(worker: EventForwarder, until: Any, what: str) -> None:
    """``worker.run_once()`` until ``until()`` holds (the worker in this thread)."""
    wait_until(lambda: (worker.run_once(), until())[1], timeout=30, interval=0, what=what)


def school_with_events() -> TrainingSchool:
    school = TrainingSchool(env=application_env())
    school.register("Fido")
    school.add_trick("Fido", "roll over")
    school.register("Rex")
    school.add_trick("Fido", "play dead")
    school.add_trick("Rex", "sit")
    return school


def new_topic(bootstrap: str) -> str:
    name = f"forward-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1)]).values():
        future.result(10)
    return name


def position(school: TrainingSchool, name: str) -> int | None:
    recorder = school.recorder
    tracking = DjangoTrackingRecorder(name, using=recorder.using, tables=recorder.tables)
    return tracking.max_tracking_id(school.name)


def forwarder(
    school: TrainingSchool, transport: Any, destination: str, **kw: Any
) -> EventForwarder:
    kw.setdefault("name", f"forward-test-{uuid.uuid4().hex[:6]}")
    worker = EventForwarder(
        school, lambda: transport, destination, reconnect=FAST, poll_interval=0.01, **kw
    )
    worker.start()
    return worker


def forward_all(worker: EventForwarder, school: TrainingSchool) -> None:
    last = school.recorder.max_notification_id()
    try:
        drive(worker, lambda: worker.position == last, what=f"position {last}")
    finally:
        worker.stop()


def test_kafka_in_notification_order_as_json(kafka_bootstrap) -> None:
    school = school_with_events()
    topic = new_topic(kafka_bootstrap)
    worker = forwarder(
        school, KafkaTransport({"bootstrap.servers": kafka_bootstrap}), topic, batch_size=2
    )
    forward_all(worker, school)
    assert position(school, worker.tracking_name) == 5
    records = read_topic(kafka_bootstrap, topic, 5)
    bodies = [json.loads(r.value()) for r in records]
    assert [b["id"] for b in bodies] == [1, 2, 3, 4, 5]
    assert [b["type"] for b in bodies] == [
        "Dog.Registered",
        "Dog.TrickAdded",
        "Dog.Registered",
        "Dog.TrickAdded",
        "Dog.TrickAdded",
    ]
    fido = str(Dog.create_id("Fido"))
    first, second = bodies[0], bodies[1]
    assert first["application"] == "TrainingSchool"
    assert first["topic"].endswith(":Dog.Registered")
    assert (first["originator_id"], first["originator_version"]) == (fido, 1)
    assert first["state"]["name"] == "Fido" and "timestamp" not in first["state"]
    assert first["timestamp"].startswith("20")
    assert second["state"] == {"trick": "roll over"}
    assert records[0].key() == fido.encode()
    headers = dict(records[3].headers())
    assert headers["dop-msg-id"] == b"TrainingSchool:4"
    assert headers["dop-notification-id"] == b"4"
    assert headers["dop-originator-version"] == b"3"


def test_two_pages_in_flight_and_a_stop_records_what_it_sent(kafka_bootstrap) -> None:
    school = school_with_events()
    topic = new_topic(kafka_bootstrap)
    worker = forwarder(
        school, KafkaTransport({"bootstrap.servers": kafka_bootstrap}), topic, batch_size=2
    )
    try:
        worker.run_once()
        # Pages 1-2 and 3-4 were sent; the first is recorded, the second still in flight.
        assert worker.position == 2
        assert [[m.key for m in page] for page in worker._inflight] == [[3, 4]]
    finally:
        worker.stop()
    # The stop waited for 3-4 and recorded it, so a new start sends nothing twice.
    assert not worker._inflight and position(school, worker.tracking_name) == 4
    assert [json.loads(r.value())["id"] for r in read_topic(kafka_bootstrap, topic, 4)] == [
        1,
        2,
        3,
        4,
    ]


def test_raw_forwards_the_stored_bytes(kafka_bootstrap) -> None:
    school = school_with_events()
    topic = new_topic(kafka_bootstrap)
    worker = forwarder(
        school, KafkaTransport({"bootstrap.servers": kafka_bootstrap}), topic, raw=True
    )
    forward_all(worker, school)
    stored = [n.state for n in school.recorder.select_notifications(1, 10)]
    records = read_topic(kafka_bootstrap, topic, 5)
    assert [r.value() for r in records] == stored
    assert dict(records[0].headers())["dop-event-topic"].endswith(b":Dog.Registered")


@pytest.fixture
def amqp_queue(rabbitmq_url: str) -> Iterator[tuple[str, str, Any]]:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    name = f"forward-{uuid.uuid4().hex[:10]}"
    channel.exchange_declare(name, "direct", auto_delete=True)
    channel.queue_declare(name, auto_delete=True)
    channel.queue_bind(name, name, routing_key="TrainingSchool")
    yield name, name, channel
    connection.close()


def drain(channel: Any, queue: str, count: int) -> list[tuple[Any, bytes]]:
    found: list[tuple[Any, bytes]] = []

    def more() -> bool:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            found.append((properties, body))
        return len(found) >= count

    wait_until(more, timeout=20, interval=0.01, what=f"{count} messages")
    return found


def test_amqp_through_a_cut_connection_nothing_skipped(rabbitmq_url, amqp_queue) -> None:
    exchange, queue, channel = amqp_queue
    school = school_with_events()
    parts = pika.URLParameters(rabbitmq_url)
    proxy = TcpProxy((parts.host, parts.port)).start()
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
    worker = forwarder(school, AmqpTransport(url, exchange=exchange), "TrainingSchool")
    try:
        drive(worker, lambda: worker.position == 5, what="the first five")
        proxy.cut()
        school.add_trick("Rex", "beg")
        school.add_trick("Rex", "fetch")
        for _ in range(5):
            worker.run_once()  # cannot connect: backs off, records nothing
        assert worker.position == 5 and worker._broker.attempt >= 1
        proxy.restore()
        drive(worker, lambda: worker.position == 7, what="the two written during the outage")
    finally:
        worker.stop()
        proxy.stop()
    messages = drain(channel, queue, 7)
    assert [json.loads(body)["id"] for _, body in messages] == [1, 2, 3, 4, 5, 6, 7]
    assert messages[6][0].headers["dop-msg-id"] == "TrainingSchool:7"
    assert messages[6][0].content_type == "application/json"


def garbage_after_two(school: TrainingSchool) -> None:
    school.register("Fido")
    school.add_trick("Fido", "sit")
    school.recorder.insert_events(
        [
            StoredEvent(
                uuid.uuid4(), 1, "tests.project.eventstore_app.domain:Dog.Registered", b"\xff"
            )
        ]
    )
    school.register("Rex")


@pytest.mark.parametrize("raw", [False, True])
def test_kafka_page_messages_are_the_notification_messages_encoded(raw: bool) -> None:
    """What the forwarder sends a Kafka page with (headers as bytes, built once per page's
    constant parts) is :func:`notification_message` byte for byte, undecodable events too."""
    school = TrainingSchool(env=application_env())
    garbage_after_two(school)
    notifications = school.recorder.select_notifications(1, 10)
    pages = _KafkaMessages(school, "topic", raw=raw, undecodable="raw")
    for notification in notifications:
        fast = pages.message(notification)
        plain = notification_message(school, notification, "topic", raw=raw, undecodable="raw")
        headers = fast.raw_headers
        if headers is None:  # the undecodable one: the plain message itself
            headers = [(k, v.encode()) for k, v in fast.headers.items()]
        assert headers == [(k, v.encode()) for k, v in plain.headers.items()]
        assert (fast.key, fast.body, fast.content_type) == (
            plain.key,
            plain.body,
            plain.content_type,
        )
        assert (fast.raw_key or fast.ordering_key.encode()) == plain.ordering_key.encode()  # type: ignore[union-attr]
    assert len(notifications) == 4


def test_an_undecodable_event_stops_the_forwarder_after_the_events_before_it(
    kafka_bootstrap,
) -> None:
    school = TrainingSchool(env=application_env())
    garbage_after_two(school)
    topic = new_topic(kafka_bootstrap)
    worker = forwarder(school, KafkaTransport({"bootstrap.servers": kafka_bootstrap}), topic)
    try:
        drive(worker, lambda: worker.position == 2, what="the two before it")
        with pytest.raises(UndecodableEvent, match=r"notification 3 .*cannot be decoded"):
            worker.run_once()
    finally:
        worker.stop()
    assert position(school, worker.tracking_name) == 2


def test_an_undecodable_event_forwarded_flagged_with_its_bytes(kafka_bootstrap) -> None:
    school = TrainingSchool(env=application_env())
    garbage_after_two(school)
    topic = new_topic(kafka_bootstrap)
    worker = forwarder(
        school,
        KafkaTransport({"bootstrap.servers": kafka_bootstrap}),
        topic,
        undecodable="raw",
    )
    forward_all(worker, school)
    records = read_topic(kafka_bootstrap, topic, 4)
    assert records[2].value() == b"\xff"
    assert b"cannot be decoded" in dict(records[2].headers())["dop-decode-error"]
    assert json.loads(records[3].value())["state"]["name"] == "Rex"


def test_command_line_errors_exit_2() -> None:
    for args, message in [
        (["nothing.here", "--kafka", "t"], "neither an installed app"),
        (["tests.project.eventstore_app.domain.Dog", "--kafka", "t"], "not an eventsourcing"),
        ([SCHOOL, "--transport", "x.y"], "needs --destination"),
        ([SCHOOL, "--transport", "x.y", "--destination", "d"], "--transport: .*x"),
        ([SCHOOL, "--kafka", "t", "-w", "2"], "one process per --name"),
    ]:
        with pytest.raises(CommandError, match=message) as raised:
            call_command("forward_events", *args, stdout=io.StringIO())
        assert raised.value.returncode == 2
