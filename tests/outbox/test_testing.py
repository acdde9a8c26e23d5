"""``django_messaging.outbox.testing`` against RabbitMQ: one scenario, run through the real
relay and subscriber over STOMP and through ``OutboxBroker`` in memory, gives the same result."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.test import TestCase, override_settings

from django_messaging.core import suppress
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.consumers import Consumer
from django_messaging.outbox.models import Published, Received
from django_messaging.outbox.payloads import Payload
from django_messaging.outbox.relay import Relay
from django_messaging.outbox.testing import OutboxBroker
from tests.helpers import readme_section
from tests.outbox.helpers import drive, topic
from tests.project.outbox_app.models import PLAIN, Order, PlainModel

FAST_RETRIES = override_settings(
    MESSAGING={
        **settings.MESSAGING,
        "OUTBOX": {**settings.MESSAGING["OUTBOX"], "DEFAULT_CONSUMER_RETRY_WAIT": 0},
    }
)


def store_or_nack(payload: Payload) -> None:
    """Stores an order; nacks "bad-" ones; raises (every attempt) on "boom-" ones."""
    number = str(payload.body["number"])
    if number.startswith("bad-"):
        payload.nack()
        return
    if number.startswith("boom-"):
        raise ValueError("cannot handle")
    with transaction.atomic():
        Order.objects.create(number=number)
        payload.save()


def write_rows(destination: str) -> None:
    """Three committed rows, one rolled back, one suppressed."""
    Published.objects.create(destination=destination, body={"number": "A-1"})
    try:
        with transaction.atomic():
            Published.objects.create(destination=destination, body={"number": "rolled-back"})
            raise RuntimeError("rollback")
    except RuntimeError:
        pass
    with transaction.atomic():
        Published.objects.create(destination=destination, body={"number": "bad-1"})
    Published.objects.create(destination=destination, body={"number": "boom-1"})


def reasons(found) -> list[str]:
    """Dead-letter reasons without the message ids (rows differ between the two runs)."""
    return sorted(re.sub(r"message [0-9a-f-]+, ", "", reason or "") for reason in found)


def outcome() -> dict:
    return {
        "orders": sorted(Order.objects.values_list("number", flat=True)),
        "received": Received.objects.count(),
        "sent": Published.objects.filter(status=StatusChoice.SUCCEEDED).count(),
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
@FAST_RETRIES
def test_same_result_in_memory_and_through_rabbitmq(unique_name, probe) -> None:
    destination, _ = topic(unique_name)

    # Through RabbitMQ: subscriber first (its queue must exist), then the relay.
    consumer = Consumer(store_or_nack, destination, unique_name("q"))
    consumer.start()
    dlq = probe(f"/queue/{consumer.dead_letter_queue}", durable=True)
    try:
        write_rows(destination)
        relay = Relay()
        relay.start()
        try:
            drive(
                relay,
                lambda: Published.objects.filter(status=StatusChoice.SUCCEEDED).count() == 3,
                what="sent",
            )
        finally:
            relay.stop()
        drive(consumer, lambda: consumer.handled >= 3, what="3 handled")
        drive(consumer, lambda: len(dlq.messages) >= 2, what="2 dead letters")
    finally:
        consumer.stop()
    real = outcome()
    real_dead = sorted(json.loads(body)["number"] for _, body in dlq.messages)
    real_reasons = reasons(h.get("dop-dead-letter-reason") for h, _ in dlq.messages)

    Order.objects.all().delete()
    Received.objects.all().delete()
    Published.objects.all().delete()

    # In memory.
    with OutboxBroker() as broker:
        write_rows(destination)
        results = broker.deliver(store_or_nack, destination, queue_name=consumer.queue_name)
    memory = outcome()
    memory_dead = sorted(m.value["number"] for m in broker.dead_letters)
    memory_reasons = reasons(m.headers.get("dop-dead-letter-reason") for m in broker.dead_letters)

    assert real == memory == {"orders": ["A-1"], "received": 1, "sent": 3}
    assert real_dead == memory_dead == ["bad-1", "boom-1"]
    assert real_reasons == memory_reasons
    assert "failed 3 times with builtins.ValueError" in memory_reasons[1]
    assert [r.outcome for r in results] == ["acked", "nacked", "dead-lettered"]
    assert broker.deliver(store_or_nack, destination) == []  # each captured message once


@pytest.mark.django_db
def test_capture_inside_the_test_transaction() -> None:
    with OutboxBroker() as broker:
        with transaction.atomic():
            PlainModel.objects.create(field_one="one", field_two="two")
            with pytest.raises(RuntimeError, match="committed rows only"):
                broker.flush()
        try:
            with transaction.atomic():
                PlainModel.objects.create(field_one="gone", field_two="gone")
                raise RuntimeError
        except RuntimeError:
            pass
        with suppress():
            PlainModel.objects.create(field_one="quiet", field_two="quiet")
        sent = broker.flush()
        assert [m.value["field_one"] for m in sent] == ["one"]
        row = Published.objects.get()
        message = broker.sent.assert_sent(
            PLAIN, value={"id": row.body["id"], "field_one": "one", "field_two": "two"}
        )
        assert message.headers["dop-msg-id"] == str(row.id)
        assert message.headers["content-type"] == "application/json"
        assert row.status == StatusChoice.SUCCEEDED  # marked sent, as by the relay
        assert broker.flush() == []  # sent once


@pytest.mark.django_db
def test_deliver_is_idempotent_and_commits_inside_the_test_transaction() -> None:
    broker = OutboxBroker()
    message = broker.message("/topic/orders", {"number": "X-1"}, {"x-extra": "1"})
    first, again = broker.deliver(store_or_nack, "/topic/orders", [message, message])
    assert first.acked and again.acked
    assert list(Order.objects.values_list("number", flat=True)) == ["X-1"]
    received = Received.objects.get()
    assert received.msg_id == message.headers["dop-msg-id"]
    assert received.headers["x-extra"] == "1"
    assert broker.received("/topic/orders") == [received.msg_id]


def forgets(payload: Payload) -> None:
    Order.objects.create(number="forgot")


class OutboxTestCaseTests(TestCase):
    def test_a_callback_that_neither_saves_nor_nacks_is_dead_lettered(self) -> None:
        broker = OutboxBroker()
        [result] = broker.deliver(forgets, "/topic/x", [broker.message("/topic/x", {"number": 1})])
        self.assertTrue(result.dead_lettered)
        self.assertIn("returned without calling payload.save()", result.reason or "")
        self.assertEqual(broker.dead_letters[0].destination, "/queue/DLQ.x")


@pytest.mark.django_db
def test_the_pytest_fixture(messaging_outbox: OutboxBroker) -> None:
    PlainModel.objects.create(field_one="a", field_two="b")
    messaging_outbox.assert_sent(PLAIN, headers={"dop-msg-type": "Published"})
    [result] = messaging_outbox.deliver(
        store_or_nack, PLAIN, [messaging_outbox.message(PLAIN, {"number": "F-1"})]
    )
    assert result.acked
    assert Order.objects.get().number == "F-1"


@pytest.mark.django_db
def test_the_readme_example_runs(monkeypatch) -> None:
    app = types.ModuleType("my_app")
    app.__path__ = []  # type: ignore[attr-defined]
    models = types.ModuleType("my_app.models")
    models.Order = Order  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_app", app)
    monkeypatch.setitem(sys.modules, "my_app.models", models)
    example = readme_section(Path(__file__).resolve().parents[2] / "packages/outbox/README.md")
    example["test_an_order_is_recorded_once"](OutboxBroker(), None)
    for name in (
        "test_a_rolled_back_order_sends_nothing",
        "test_an_order_without_a_number_is_dead_lettered",
    ):
        getattr(example["OrderTests"](name), name)()
