"""The harness reaches every real service: one round trip each."""

from __future__ import annotations

import uuid

import pika
import pytest
import stomp
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.contrib.auth.models import Group
from django.db import connection

from tests.helpers import wait_until
from tests.services import FAST_GROUP_CONFIG


@pytest.mark.django_db
def test_database_round_trip() -> None:
    Group.objects.create(name="harness")
    assert Group.objects.get(name="harness").name == "harness"
    assert connection.vendor in {"sqlite", "postgresql", "mysql"}


def test_rabbitmq_amqp_round_trip(rabbitmq_url: str, unique_name) -> None:
    queue = unique_name("harness")
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        channel = conn.channel()
        channel.queue_declare(queue, auto_delete=True)
        channel.basic_publish("", queue, b"hello amqp")
        body = wait_until(lambda: channel.basic_get(queue, auto_ack=True)[2], what="the message")
        assert body == b"hello amqp"
    finally:
        conn.close()


def test_rabbitmq_stomp_round_trip(stomp_address: tuple[str, int], unique_name) -> None:
    received: list[bytes] = []

    class Listener(stomp.ConnectionListener):
        def on_message(self, frame: stomp.utils.Frame) -> None:
            received.append(frame.body)

    conn = stomp.Connection([stomp_address], auto_decode=False)
    conn.set_listener("harness", Listener())
    conn.connect("guest", "guest", wait=True)
    try:
        destination = f"/queue/{unique_name('harness')}"
        conn.subscribe(destination, id="1", ack="auto", headers={"auto-delete": "true"})
        conn.send(destination, b"hello stomp", receipt=str(uuid.uuid4()))
        assert wait_until(lambda: received, what="the STOMP message") == [b"hello stomp"]
    finally:
        conn.disconnect()


def test_kafka_round_trip(kafka_bootstrap: str, unique_name) -> None:
    topic = unique_name("harness")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, key=b"k", value=b"hello kafka", headers=[("h", b"v")])
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_name("group"),
            "auto.offset.reset": "earliest",
            **FAST_GROUP_CONFIG,
        }
    )
    consumer.subscribe([topic])
    try:
        message = wait_until(lambda: consumer.poll(0.5), timeout=20, what="the Kafka message")
        assert message.error() is None
        assert (message.key(), message.value(), message.headers()) == (
            b"k",
            b"hello kafka",
            [("h", b"v")],
        )
    finally:
        consumer.close()


def test_proxy_closes_the_sockets_of_connections_that_ended() -> None:
    """A proxy in front of a worker's database carries thousands of short connections: each
    must give its descriptors back when it ends, not at the next cut."""
    import os
    import socket
    import threading

    from tests.proxy import TcpProxy

    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.recv(16))

    threading.Thread(target=echo, daemon=True).start()
    proxy = TcpProxy(server.getsockname()).start()
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(200):
            with socket.create_connection(proxy.address) as client:
                client.sendall(b"ping")
                assert client.recv(16) == b"ping"
        wait_until(
            lambda: len(os.listdir("/proc/self/fd")) <= before + 4,
            timeout=10,
            what="the proxy to close the sockets of finished connections",
        )
        proxy.cut()
        proxy.restore()
        with socket.create_connection(proxy.address) as client:
            client.sendall(b"again")
            assert client.recv(16) == b"again"
    finally:
        proxy.stop()
        server.close()
