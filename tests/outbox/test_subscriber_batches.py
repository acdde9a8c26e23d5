"""Messages waiting together are handled in one transaction and acknowledged after its commit."""

from __future__ import annotations

import pytest
from django.db import connection

from django_messaging.outbox.consumers import DEAD_LETTER_REASON_HEADER, Consumer
from django_messaging.outbox.models import Received
from tests.helpers import wait_until
from tests.outbox import callbacks
from tests.outbox.conftest import queue_depth
from tests.outbox.helpers import drive, topic
from tests.outbox.stomp_probe import send_raw
from tests.project.outbox_app.models import Order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def waiting(stomp_address, unique_name):
    """A started consumer with ``messages`` already in its inbox (none handled yet)."""
    made: list[Consumer] = []

    def make(callback, messages: list[tuple[str, str]]) -> Consumer:
        destination, _ = topic(unique_name)
        consumer = Consumer(callback, destination, unique_name("q"))
        consumer.start()
        made.append(consumer)
        for msg_id, number in messages:
            send_raw(
                stomp_address, destination, f'{{"number": "{number}"}}', {"dop-msg-id": msg_id}
            )
        # More than one unacknowledged message in flight: the prefetch is above 1.
        wait_until(lambda: consumer._inbox.qsize() == len(messages), timeout=30)
        return consumer

    yield make
    for consumer in made:
        consumer.stop()


def test_waiting_messages_commit_in_one_transaction(waiting) -> None:
    consumer = waiting(callbacks.store_order, [(f"b{i}", str(i)) for i in range(20)])
    drive(consumer, lambda: consumer.handled == 20, what="20 messages handled")
    assert consumer.messages_handled() == 20  # the throughput of the status samples
    assert sorted(int(o.number) for o in Order.objects.all()) == list(range(20))
    assert Received.objects.filter(queue=consumer.queue_name).count() == 20
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Rows written in one transaction outside any savepoint share their xmin.
            cursor.execute(f"SELECT count(DISTINCT xmin::text) FROM {Received._meta.db_table}")
            assert cursor.fetchone()[0] == 1
    wait_until(lambda: queue_depth(consumer.queue_name) == (0, 0), timeout=30)


def test_a_failing_callback_rolls_back_its_batch_and_only_it_is_dead_lettered(
    waiting, probe
) -> None:
    consumer = waiting(callbacks.raises_on_three, [(f"f{i}", str(i)) for i in range(6)])
    dlq = probe(f"/queue/{consumer.dead_letter_queue}", durable=True)
    drive(consumer, lambda: consumer.handled == 6 and dlq.messages, what="5 stored, 1 DLQ")
    assert sorted(o.number for o in Order.objects.all()) == ["0", "1", "2", "4", "5"]
    assert Received.objects.count() == 5
    assert dlq.messages[0][0]["dop-msg-id"] == "f3"
    assert "ValueError" in dlq.messages[0][0][DEAD_LETTER_REASON_HEADER]
    wait_until(lambda: queue_depth(consumer.queue_name) == (0, 0), timeout=30)


def test_a_save_rolled_back_inside_a_batch_is_dead_lettered_not_acknowledged(
    waiting, probe
) -> None:
    consumer = waiting(callbacks.swallows_rollback_on_two, [(f"s{i}", str(i)) for i in range(4)])
    dlq = probe(f"/queue/{consumer.dead_letter_queue}", durable=True)
    drive(consumer, lambda: consumer.handled == 4 and dlq.messages, what="3 stored, 1 DLQ")
    assert sorted(o.number for o in Order.objects.all()) == ["0", "1", "3"]
    assert sorted(Received.objects.values_list("msg_id", flat=True)) == ["s0", "s1", "s3"]
    assert "did not commit" in dlq.messages[0][0][DEAD_LETTER_REASON_HEADER]


def test_a_duplicate_inside_one_batch_is_processed_once(waiting) -> None:
    messages = [("d1", "1"), ("d2", "2"), ("d1", "1"), ("d3", "3")]
    consumer = waiting(callbacks.store_order, messages)
    drive(consumer, lambda: consumer.handled == 4, what="4 messages handled")
    assert sorted(o.number for o in Order.objects.all()) == ["1", "2", "3"]
    assert len(callbacks.calls) == 3
    wait_until(lambda: queue_depth(consumer.queue_name) == (0, 0), timeout=30)
