"""The relations resolver against the broker: a message whose related row is missing is
parked (offset committed), later messages of its key queue behind it, a tombstone discards
the queue, and parked messages are replayed once, in offset order, through the topic's
failure policy (django-kafka 0.10.0/1.3.0/2.0.0/3.1.0, without its PostgreSQL-only query)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from django_messaging.kafka.models import WaitingMessage
from django_messaging.kafka.relations import ModelRelation, resolve
from django_messaging.kafka.topic import TopicConsumer
from tests.kafka.conftest import committed, make_consumer, make_topic, produce_raw, run_until
from tests.project.kafka_app.models import Handled, Product

pytestmark = pytest.mark.django_db(transaction=True)


def order_topic(name: str, **attrs):
    """Orders naming a product: ``{"product": id, "n": ...}``; ``"boom"`` fails."""

    def get_relations(self, msg):
        yield ModelRelation(Product, "id", json.loads(msg.value())["product"])

    def consume(self, msg):
        if msg.value() is None:
            Handled.objects.create(topic=msg.topic(), value="tombstone")
            return
        n = json.loads(msg.value())["n"]
        if n == "boom":
            raise ValueError("boom")
        Handled.objects.create(topic=msg.topic(), value=str(n))

    return make_topic(TopicConsumer, name, get_relations=get_relations, consume=consume, **attrs)


def order(product: int, n: object) -> bytes:
    return json.dumps({"product": product, "n": n}).encode()


def handled(name: str) -> list[str]:
    return list(Handled.objects.filter(topic=name).order_by("id").values_list("value", flat=True))


def seen(name: str) -> int:
    """Messages of ``name`` handled or parked."""
    return len(handled(name)) + WaitingMessage.objects.filter(topic=name).count()


def waiting(name: str) -> list[tuple[int, str]]:
    rows = WaitingMessage.objects.filter(topic=name).order_by("offset")
    return list(rows.values_list("offset", "status"))


@pytest.mark.parametrize("atomic", [False, True], ids=["plain", "atomic"])
def test_missing_relation_parks_and_replays_in_offset_order_once(
    create_topic, group, kafka_bootstrap, atomic
):
    name = create_topic()
    Product.objects.create(id=1, name="present")
    produce_raw(kafka_bootstrap, name, [order(1, 0)], key=b"k1")  # handled at once
    produce_raw(kafka_bootstrap, name, [order(2, 1)], key=b"k2")  # product 2 missing
    produce_raw(kafka_bootstrap, name, [order(1, 2)], key=b"k2")  # behind it, same key
    produce_raw(kafka_bootstrap, name, [order(1, 3)], key=b"k3")  # other key: handled
    cls = make_consumer(group, order_topic(name, atomic=atomic)())
    consumer = cls()
    run_until(consumer, lambda: seen(name) == 4, what="messages")
    assert committed(kafka_bootstrap, group, name) == [4]
    assert handled(name) == ["0", "3"]
    assert waiting(name) == [(1, "waiting"), (2, "waiting")]

    replayer = cls()
    try:
        assert resolve(replayer) == 0  # product 2 still missing
        Product.objects.create(id=2, name="late")
        assert resolve(replayer) == 2
        assert resolve(replayer) == 0  # exactly once
    finally:
        replayer.stop()
    assert handled(name) == ["0", "3", "1", "2"]
    assert waiting(name) == [(1, "replayed"), (2, "replayed")]


def test_tombstone_discards_the_queue_of_its_key(create_topic, group, kafka_bootstrap):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [order(7, 1), order(7, 2)], key=b"k")
    produce_raw(kafka_bootstrap, name, [None], key=b"k")
    produce_raw(kafka_bootstrap, name, [order(7, 4)], key=b"other")
    cls = make_consumer(group, order_topic(name)())
    run_until(cls(), lambda: seen(name) == 4, what="messages")
    assert committed(kafka_bootstrap, group, name) == [4]
    assert handled(name) == ["tombstone"]
    assert waiting(name) == [(0, "discarded"), (1, "discarded"), (3, "waiting")]
    Product.objects.create(id=7, name="late")
    replayer = cls()
    try:
        assert resolve(replayer) == 1
    finally:
        replayer.stop()
    assert handled(name) == ["tombstone", "4"]


def test_a_failing_replay_goes_to_the_dead_letter_topic(create_topic, group, kafka_bootstrap, read):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [order(5, "boom"), order(5, 2)], key=b"k")
    cls = make_consumer(group, order_topic(name)())
    run_until(cls(), lambda: seen(name) == 2, what="messages")
    assert committed(kafka_bootstrap, group, name) == [2]
    Product.objects.create(id=5, name="late")
    replayer = cls()
    try:
        assert resolve(replayer) == 2
    finally:
        replayer.stop()
    dead = read(f"{group}.{name}.dlt", 1)
    assert [m.value() for m in dead] == [order(5, "boom")]
    assert handled(name) == ["2"]
    assert waiting(name) == [(0, "replayed"), (1, "replayed")]


def test_the_command_replays_once(create_topic, group, kafka_bootstrap):
    from django_messaging.kafka import kafka

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [order(9, 1)], key=b"k")
    cls = make_consumer(group, order_topic(name)())
    run_until(cls(), lambda: seen(name) == 1, what="messages")
    assert committed(kafka_bootstrap, group, name) == [1]
    Product.objects.create(id=9, name="late")
    key = kafka.consumers.register(cls)
    try:
        out = io.StringIO()
        call_command("kafka_resolve_relations", key, "--once", stdout=out)
        assert "replayed 1 message(s)" in out.getvalue()
    finally:
        kafka.consumers.unregister(key)
    assert handled(name) == ["1"]


def test_admin_lists_filters_and_replays(admin_client, create_topic, group, kafka_bootstrap):
    from django_messaging.kafka import kafka

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [order(11, 1)], key=b"k")
    cls = make_consumer(group, order_topic(name)())
    run_until(cls(), lambda: seen(name) == 1, what="messages")
    assert committed(kafka_bootstrap, group, name) == [1]
    url = "/admin/messaging_kafka/waitingmessage/"
    page = admin_client.get(url, {"status__exact": "waiting", "topic": name})
    assert page.status_code == 200 and name in page.content.decode()
    row = WaitingMessage.objects.get(topic=name)
    assert admin_client.get(f"{url}{row.pk}/change/").status_code == 200
    Product.objects.create(id=11, name="late")
    key = kafka.consumers.register(cls)
    try:
        response = admin_client.post(
            url, {"action": "replay", "_selected_action": [row.pk]}, follow=True
        )
    finally:
        kafka.consumers.unregister(key)
    assert "1 of 1 waiting message(s) replayed" in response.content.decode()
    assert handled(name) == ["1"]


def test_a_blocking_retry_of_a_replay_keeps_its_key_waiting(
    create_topic, group, kafka_bootstrap, read
):
    from django_messaging.kafka import kafka

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [order(6, "boom"), order(6, 2)], key=b"k")
    topic = kafka.retry(max_retries=1, delay=0.01)(order_topic(name))
    cls = make_consumer(group, topic())
    run_until(cls(), lambda: seen(name) == 2, what="messages")
    Product.objects.create(id=6, name="late")
    replayer = cls()
    try:
        assert resolve(replayer) == 0  # attempt 1 failed: retried on the next run
        assert waiting(name) == [(0, "waiting"), (1, "waiting")]
        assert resolve(replayer) == 2  # attempt 2 failed: dead letter, then the next one
    finally:
        replayer.stop()
    assert [m.value() for m in read(f"{group}.{name}.dlt", 1)] == [order(6, "boom")]
    assert handled(name) == ["2"]
