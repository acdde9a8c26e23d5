"""The subscriber against RabbitMQ: idempotency, acknowledgement after commit, poison
messages, dead letters, reconnects."""

from __future__ import annotations

import json
import logging
import re
import socket

import pytest
from django.conf import settings

from django_messaging.outbox import connection as stomp_connection
from django_messaging.outbox.consumers import DEAD_LETTER_REASON_HEADER, Consumer
from django_messaging.outbox.factories import factory_producer
from django_messaging.outbox.models import Received
from tests.helpers import wait_until
from tests.outbox import callbacks
from tests.outbox.conftest import queue_depth
from tests.outbox.helpers import drive, outbox_settings, topic
from tests.outbox.stomp_probe import send_raw
from tests.project.outbox_app.models import Order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


@pytest.fixture
def subscription(unique_name):
    made = []

    def make(callback, queue=None, destination=None):
        if destination is None:
            destination, _ = topic(unique_name)
        consumer = Consumer(callback, destination, queue or unique_name("q"))
        consumer.start()
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer.stop()


def dead_letters(probe, consumer):
    return probe(f"/queue/{consumer.dead_letter_queue}", durable=True)


def test_save_commits_then_acknowledges(stomp_address, subscription) -> None:
    consumer = subscription(callbacks.store_order)
    with factory_producer() as producer:
        producer.send_event(consumer.destination, {"number": "A-1"}, {"x-extra": "1"})
    drive(consumer, lambda: Received.objects.exists(), what="the Received row")
    received = Received.objects.get()
    assert received.queue == consumer.queue_name
    assert received.body == {"number": "A-1"}
    assert received.headers["x-extra"] == "1"
    assert received.destination == consumer.destination
    assert list(Order.objects.values_list("number", flat=True)) == ["A-1"]
    payload = callbacks.calls[0]
    assert payload.acked and payload.body == {"number": "A-1"}
    assert queue_depth(consumer.queue_name) == (0, 0)


def test_duplicate_deliveries_run_the_callback_once(stomp_address, subscription) -> None:
    consumer = subscription(callbacks.store_order)
    headers = {"dop-msg-id": "same-id-1"}
    for _ in range(3):
        send_raw(stomp_address, consumer.destination, json.dumps({"number": "D"}), headers)
    with factory_producer() as producer:
        producer.send_event(consumer.destination, {"number": "after"}, {"dop-msg-id": "other"})
    drive(consumer, lambda: Order.objects.filter(number="after").exists())
    assert len(callbacks.calls) == 2
    assert Received.objects.filter(msg_id="same-id-1").count() == 1
    assert Order.objects.filter(number="D").count() == 1


def test_unique_constraint_on_message_id_and_queue(stomp_address) -> None:
    from django.db import IntegrityError, transaction

    Received.objects.create(msg_id="m1", queue="q1")
    Received.objects.create(msg_id="m1", queue="q2")  # another subscription may process it
    with pytest.raises(IntegrityError), transaction.atomic():
        Received.objects.create(msg_id="m1", queue="q1")


def test_other_producers_id_header_is_configurable(stomp_address, subscription) -> None:
    """django-outbox-pattern fell back to RabbitMQ's ``message-id``, which changes on every
    redelivery (research E2), so messages of other producers were never de-duplicated."""
    with outbox_settings(DEFAULT_CONSUMER_ID_HEADERS=["x-event-id"]):
        consumer = subscription(callbacks.store_order)
        for _ in range(2):
            send_raw(stomp_address, consumer.destination, '{"number": "E"}', {"x-event-id": "ev-9"})
        send_raw(stomp_address, consumer.destination, '{"number": "F"}', {"x-event-id": "ev-10"})
        drive(consumer, lambda: Order.objects.filter(number="F").exists())
    assert Order.objects.filter(number="E").count() == 1
    assert set(Received.objects.values_list("msg_id", flat=True)) == {"ev-9", "ev-10"}


def test_cap_msg_id_is_accepted_by_default(stomp_address, subscription) -> None:
    consumer = subscription(callbacks.store_order)
    send_raw(stomp_address, consumer.destination, '{"number": "C"}', {"cap-msg-id": "cap-1"})
    drive(consumer, lambda: Received.objects.filter(msg_id="cap-1").exists())


def _passive_declare(queue: str) -> int:
    """AMQP reply code of a passive declare of ``queue`` from another connection (200: ok)."""
    import pika

    from tests.services import RABBITMQ_URL

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        connection.channel().queue_declare(queue=queue, passive=True)
        return 200
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code
    finally:
        if connection.is_open:
            connection.close()


def test_exclusive_queue_belongs_to_the_subscribers_connection(stomp_address, unique_name) -> None:
    """django-outbox-pattern's DEFAULT_EXCLUSIVE_QUEUE: no other connection may use the queue,
    and the broker deletes it when the subscriber goes."""
    destination, _ = topic(unique_name)
    with outbox_settings(DEFAULT_EXCLUSIVE_QUEUE=True):
        consumer = Consumer(callbacks.store_order, destination, unique_name("q"))
        consumer.start()
        try:
            assert _passive_declare(consumer.queue_name) == 405  # RESOURCE_LOCKED
            send_raw(stomp_address, destination, '{"number": "X"}', {"dop-msg-id": "excl-1"})
            drive(consumer, lambda: Received.objects.filter(msg_id="excl-1").exists())
        finally:
            consumer.stop()
    wait_until(  # gone with the connection
        lambda: _passive_declare(consumer.queue_name) == 404, timeout=10, what="queue deleted"
    )
    assert _passive_declare(consumer.dead_letter_queue) == 200  # dead letters are kept


def test_a_retry_first_checks_whether_another_subscriber_processed_the_message(
    stomp_address, subscription, probe, caplog
) -> None:
    """django-outbox-pattern 3.2 retries the whole check-callback-save cycle after an
    ``OperationalError``: here a real statement timeout, while a competing subscriber of the
    queue records the message. The retry finds it recorded: acknowledged, the callback is not
    called again, nothing is dead-lettered."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the statement timeout is PostgreSQL's")
    consumer = subscription(callbacks.times_out_while_another_subscriber_saves)
    dlq = dead_letters(probe, consumer)
    with caplog.at_level(logging.INFO, logger="django_messaging.outbox"):
        send_raw(stomp_address, consumer.destination, '{"n": 1}', {"dop-msg-id": "raced-1"})
        drive(
            consumer,
            lambda: any("processed by another" in r.getMessage() for r in caplog.records),
            what="the retry's check",
        )
    assert len(callbacks.calls) == 1
    assert any("statement timeout" in r.getMessage() for r in caplog.records)
    assert Received.objects.filter(msg_id="raced-1").count() == 1
    wait_until(lambda: queue_depth(consumer.queue_name) == (0, 0), what="the acknowledgement")
    assert not dlq.messages


def test_raising_callback_is_retried_then_dead_lettered(
    stomp_address, subscription, probe, caplog
) -> None:
    consumer = subscription(callbacks.always_raises)
    dlq = dead_letters(probe, consumer)
    with caplog.at_level(logging.WARNING, logger="django_messaging.outbox"):
        send_raw(stomp_address, consumer.destination, '{"n": 1}', {"dop-msg-id": "poison-1"})
        drive(consumer, lambda: dlq.messages, what="the dead letter")
    assert len(callbacks.calls) == 3  # DEFAULT_CONSUMER_MAX_RETRY_ATTEMPTS
    headers, body = dlq.messages[0]
    assert json.loads(body) == {"n": 1}
    assert headers["dop-msg-id"] == "poison-1"
    assert "ValueError" in headers[DEAD_LETTER_REASON_HEADER]
    assert any("failed 3 times" in r.getMessage() for r in caplog.records)
    assert not Received.objects.exists()
    assert queue_depth(consumer.queue_name) == (0, 0)


def test_callback_without_save_or_nack_does_not_stall(
    stomp_address, subscription, probe, caplog
) -> None:
    """django-outbox-pattern 3.x (research E8): the message stayed unacknowledged and, with
    prefetch 1, the subscription stalled."""
    consumer = subscription(callbacks.forgets_to_save)
    dlq = dead_letters(probe, consumer)
    with caplog.at_level(logging.ERROR, logger="django_messaging.outbox"):
        for i in range(3):
            send_raw(stomp_address, consumer.destination, f'{{"n": {i}}}', {"dop-msg-id": f"f{i}"})
        drive(consumer, lambda: len(dlq.messages) == 3, what="three dead letters")
    assert len(callbacks.calls) == 3
    assert any(
        "without calling payload.save() or payload.nack()" in r.getMessage() for r in caplog.records
    )


def test_nack_dead_letters_through_the_broker(stomp_address, subscription, probe) -> None:
    consumer = subscription(callbacks.nacks)
    dlq = dead_letters(probe, consumer)
    send_raw(stomp_address, consumer.destination, '{"n": 1}', {"dop-msg-id": "nack-1"})
    drive(consumer, lambda: dlq.messages, what="the nacked message in the DLQ")
    assert dlq.messages[0][0]["dop-msg-id"] == "nack-1"
    assert not Received.objects.exists()


@pytest.mark.parametrize(
    "body,headers,reason",
    [
        ("{not json", {"dop-msg-id": "bad-json"}, "undecodable body"),
        (b"\xff\xfe\x00garbage", {"dop-msg-id": "bad-bytes"}, "undecodable body"),
        ('{"n": 1}', {}, "missing idempotency header"),
    ],
    ids=["malformed-json", "binary-garbage", "missing-header"],
)
def test_poison_messages_are_dead_lettered_with_a_log_line(
    stomp_address, subscription, probe, caplog, body, headers, reason
) -> None:
    """django-outbox-pattern 0.9.0 (research E11): one invalid JSON message caused hundreds of
    reconnects, and was never acknowledged."""
    consumer = subscription(callbacks.store_order)
    dlq = dead_letters(probe, consumer)
    with caplog.at_level(logging.ERROR, logger="django_messaging.outbox"):
        send_raw(stomp_address, consumer.destination, body, headers)
        send_raw(stomp_address, consumer.destination, '{"number": "ok"}', {"dop-msg-id": "ok"})
        drive(consumer, lambda: dlq.messages and Order.objects.exists(), what="DLQ + next")
    assert reason in dlq.messages[0][0][DEAD_LETTER_REASON_HEADER]
    assert any(reason in r.getMessage() for r in caplog.records)
    assert callbacks.calls[0].body == {"number": "ok"}
    assert consumer._connect_failures == 0


def test_rolled_back_save_is_not_acknowledged_and_is_retried(stomp_address, subscription) -> None:
    consumer = subscription(callbacks.fails_once_after_save)
    send_raw(stomp_address, consumer.destination, '{"number": "R"}', {"dop-msg-id": "rb-1"})
    drive(consumer, lambda: Received.objects.exists())
    assert len(callbacks.calls) == 2
    assert Order.objects.filter(number="R").count() == 1
    assert not callbacks.calls[0].acked and callbacks.calls[1].acked


def test_subscriber_reconnects_after_a_connection_drop(proxy, stomp_address, unique_name) -> None:
    destination, _ = topic(unique_name)
    with outbox_settings(DEFAULT_STOMP_HOST_AND_PORTS=[proxy.address]):
        consumer = Consumer(callbacks.store_order, destination, unique_name("q"))
        consumer.start()
        try:
            send_raw(stomp_address, destination, '{"number": "1"}', {"dop-msg-id": "r1"})
            drive(consumer, lambda: Order.objects.count() == 1)
            proxy.cut()
            send_raw(stomp_address, destination, '{"number": "2"}', {"dop-msg-id": "r2"})
            for _ in range(3):
                consumer.run_once()
            proxy.restore()
            drive(consumer, lambda: Order.objects.count() == 2, timeout=30, what="after reconnect")
        finally:
            consumer.stop()
    assert proxy.connections >= 2


def test_a_broker_that_never_answers_connect_does_not_hold_the_subscriber(
    monkeypatch, unique_name, caplog
) -> None:
    """stomp.py waits for CONNECTED without a deadline; a socket that accepts and then stays
    silent (a broker still starting) must fail the attempt, so that backoff and SIGTERM work."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody answers
    monkeypatch.setattr(stomp_connection, "CONNECT_TIMEOUT", 0.5)
    try:
        with outbox_settings(DEFAULT_STOMP_HOST_AND_PORTS=[silent.getsockname()]):
            consumer = Consumer(callbacks.store_order, "/topic/silent", unique_name("q"))
            with caplog.at_level(logging.WARNING, logger="django_messaging.outbox.consumers"):
                consumer.start()
            assert not consumer.is_connected()
            assert "cannot connect (attempt 1)" in caplog.text
            assert "no CONNECTED frame from the broker within 0.5s" in caplog.text
            consumer.stop()
    finally:
        silent.close()


def test_messages_published_by_the_relay_are_processed_once(
    stomp_address, subscription, unique_name
) -> None:
    from django_messaging.outbox.models import Published
    from django_messaging.outbox.relay import Relay

    destination, _ = topic(unique_name)
    consumer = subscription(callbacks.store_order, destination=destination)
    row = Published.objects.create(destination=destination, body={"number": "relay"})
    relay = Relay()
    relay.start()
    try:
        drive(relay, lambda: Published.objects.filter(sent_at__isnull=False).exists())
        # the relay crashed after the broker confirmed but before marking: it sends again
        relay.send_rows([Published.objects.get(id=row.id)])
    finally:
        relay.stop()
    drive(consumer, lambda: consumer.handled == 2, what="both deliveries handled")
    assert Received.objects.filter(msg_id=str(row.id)).count() == 1
    assert Order.objects.filter(number="relay").count() == 1
    assert len(callbacks.calls) == 1
    assert queue_depth(consumer.queue_name) == (0, 0)


def test_database_error_leaves_the_message_for_redelivery(
    stomp_address, subscription, monkeypatch
) -> None:
    """A database outage while handling: not acknowledged, the connection is dropped, the
    broker redelivers it and it is processed once."""
    from django.db import OperationalError

    consumer = subscription(callbacks.store_order)
    real = Consumer.message_id
    calls = []

    def flaky(self, headers):
        calls.append(headers.get("redelivered"))
        if len(calls) == 1:
            raise OperationalError("the database system is shutting down")
        return real(self, headers)

    monkeypatch.setattr(Consumer, "message_id", flaky)
    send_raw(stomp_address, consumer.destination, '{"number": "DB"}', {"dop-msg-id": "db-1"})
    drive(consumer, lambda: Order.objects.filter(number="DB").exists(), timeout=30)
    assert Order.objects.filter(number="DB").count() == 1
    assert calls == ["false", "true"]  # the second delivery is the broker's redelivery


def test_messages_of_a_subscription_it_did_not_ask_for_are_not_handled(
    stomp_address, subscription, unique_name, caplog
) -> None:
    consumer = subscription(callbacks.store_order)
    other, _ = topic(unique_name)
    receipt = consumer._receipt()
    consumer.connection.subscribe(
        other, "not-ours", ack="client-individual", headers={"receipt": receipt}
    )
    consumer._wait_receipt(receipt, "SUBSCRIBE")
    with caplog.at_level(logging.WARNING, logger="django_messaging.outbox"):
        send_raw(stomp_address, other, '{"number": "X"}', {"dop-msg-id": "x-1"})
        send_raw(stomp_address, consumer.destination, '{"number": "Y"}', {"dop-msg-id": "y-1"})
        drive(consumer, lambda: Order.objects.filter(number="Y").exists())
    assert list(Order.objects.values_list("number", flat=True)) == ["Y"]
    assert "from subscription 'not-ours' ignored" in caplog.text
    assert consumer.is_connected()


def test_reconnect_after_a_broker_error_backs_off(stomp_address, subscription, caplog) -> None:
    """An ERROR frame closes the connection; reconnecting at once met the same error again,
    hundreds of times a second."""
    import time

    consumer = subscription(callbacks.store_order)
    consumer.connection.send("/no-such-kind/of-destination", "x")  # draws an ERROR frame
    noticed = "closed by a broker error (1 in a row), reconnecting in "
    with caplog.at_level(logging.WARNING, logger="django_messaging.outbox"):
        # Until the consumer has seen the broker's ERROR frame (slow on a loaded machine).
        deadline = time.monotonic() + 30
        while noticed not in caplog.text:
            assert time.monotonic() < deadline, "no broker error"
            consumer.run_once()
    # It waits before connecting again, rather than meeting the same error at once.
    delay = float(re.search(re.escape(noticed) + r"([\d.]+)s", caplog.text).group(1))
    assert delay > 0
    assert consumer.connection is None
    drive(consumer, consumer.is_connected, what="the reconnect after the back-off")


def test_dead_letter_reason_carries_no_sql_and_no_message_contents(
    stomp_address, subscription, probe
) -> None:
    """The reason header repeated the exception, with the failed SQL statement and the values
    it quoted from the message: it says what failed and where, with ids."""
    consumer = subscription(callbacks.fails_in_sql)
    dlq = dead_letters(probe, consumer)
    body = json.dumps({"secret": "card-4242-4242"})
    send_raw(stomp_address, consumer.destination, body, {"dop-msg-id": "sql-1"})
    drive(consumer, lambda: dlq.messages, what="the dead letter")
    reason = dlq.messages[0][0][DEAD_LETTER_REASON_HEADER]
    assert "card-4242" not in reason
    assert "SELECT" not in reason and "no_such_column" not in reason
    assert reason == (
        "callback tests.outbox.callbacks.fails_in_sql failed 3 times with "
        f"django.db.utils.{'ProgrammingError' if _postgres() else 'OperationalError'} "
        f"(message sql-1, queue {consumer.queue_name})"
    )


def test_undecodable_body_reason_names_the_message_not_its_contents(
    stomp_address, subscription, probe
) -> None:
    consumer = subscription(callbacks.store_order)
    dlq = dead_letters(probe, consumer)
    send_raw(stomp_address, consumer.destination, '{"secret": "pin-1234"', {"dop-msg-id": "u-1"})
    drive(consumer, lambda: dlq.messages, what="the dead letter")
    reason = dlq.messages[0][0][DEAD_LETTER_REASON_HEADER]
    assert "pin-1234" not in reason
    assert reason.startswith("undecodable body: not valid json (")
    assert reason.endswith(f"(message u-1, queue {consumer.queue_name})")


def _postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def test_an_idempotency_id_longer_than_the_column_is_dead_lettered_up_front(
    stomp_address, subscription, probe
) -> None:
    """An id that does not fit ``Received.msg_id`` failed only at ``payload.save()`` (on
    PostgreSQL, three callback attempts; on SQLite it was stored as is)."""
    consumer = subscription(callbacks.store_order)
    dlq = dead_letters(probe, consumer)
    send_raw(stomp_address, consumer.destination, '{"number": "L"}', {"dop-msg-id": "x" * 300})
    drive(consumer, lambda: dlq.messages, what="the dead letter")
    reason = dlq.messages[0][0][DEAD_LETTER_REASON_HEADER]
    assert reason.startswith("idempotency header longer than 255 characters (message ")
    assert callbacks.calls == []
    assert not Order.objects.exists()


def test_a_frame_without_an_ack_id_is_not_queued(unique_name, caplog) -> None:
    """RabbitMQ always sets ``ack`` on a client-individual subscription, so a frame without it
    is built here: it is refused up front instead of ending in ``ACK None``."""
    from stomp.utils import Frame

    consumer = Consumer(callbacks.store_order, "/topic/x", unique_name("q"))
    headers = {"subscription": consumer.subscription_id, "destination": "/topic/x"}
    with caplog.at_level(logging.ERROR, logger="django_messaging.outbox"):
        consumer.on_message(Frame("MESSAGE", headers, b"{}"))
    assert consumer._inbox.empty()
    assert "without an ack or message-id header ignored" in caplog.text
