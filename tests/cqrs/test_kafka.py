"""The Kafka transport's own parts, against the Tansu broker: the relay's records (topic per CQRS
id, key per instance, order), settings and checks. The end-to-end flows run over Kafka in
``test_e2e`` and ``test_database_outage`` (``cqrs_transport`` "kafka")."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest
from django.core import checks

from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.relay import PendingRelay
from django_messaging.cqrs.transport.kafka import KafkaRelayTransport
from django_messaging.cqrs.transport.kafka_wire import consumer_config, topic_of
from tests.cqrs.conftest import KAFKA_TRANSPORT, ROOT, drain
from tests.helpers import readme_section
from tests.outbox.helpers import drive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("cqrs_transport", ["kafka"], indirect=True)
def test_the_relay_writes_each_instance_in_order_under_its_key(cqrs_settings, wire) -> None:
    """Stored messages of three instances, interleaved, through ``cqrs_pending``'s relay: one
    topic per CQRS id, the key ``<CQRS_ID>:<pk>``, each instance's messages in order (the
    topic has two partitions), every row deleted once its delivery report arrived."""
    rows = []
    for n in range(9):
        pk = n % 3
        body = TransportPayload("SAVE", "product", {"id": pk, "name": f"v{n}"}, pk).body()
        rows.append(
            PendingMessage(
                cqrs_id="product",
                signal_type="SAVE",
                instance_pk=str(pk),
                body=body.decode(),
                attempts=1,
            )
        )
    PendingMessage.objects.bulk_create(rows)
    deleted = PendingMessage(cqrs_id="product", signal_type="DELETE", instance_pk="1", attempts=1)
    deleted.body = TransportPayload("DELETE", "product", {"id": 1}, 1).body().decode()
    deleted.save()
    relay = PendingRelay(interval=0.05)
    assert isinstance(relay.make_transport(), KafkaRelayTransport)
    assert relay.messaging_system == "kafka"  # its send spans
    relay.start()
    try:
        drive(relay, lambda: not PendingMessage.objects.exists(), what="every row confirmed")
    finally:
        relay.stop()

    records = wire.records(topic_of("product"))
    assert topic_of("product") == f"{cqrs_settings['exchange']}.product"
    by_key: dict[bytes, list[str]] = {}
    for record in records:
        body = json.loads(record.value())
        assert dict(record.headers())["content-type"] == b"text/plain"
        by_key.setdefault(record.key(), []).append(
            body["signal_type"] + ":" + body["instance_data"].get("name", "")
        )
    assert by_key == {
        b"product:0": ["SAVE:v0", "SAVE:v3", "SAVE:v6"],
        b"product:1": ["SAVE:v1", "SAVE:v4", "SAVE:v7", "DELETE:"],
        b"product:2": ["SAVE:v2", "SAVE:v5", "SAVE:v8"],
    }


@pytest.mark.parametrize("cqrs_transport", ["kafka"], indirect=True)
def test_the_consumer_is_the_queue_s_group_and_commits_itself(cqrs_settings, settings) -> None:
    messaging = copy.deepcopy(settings.MESSAGING)
    messaging["CQRS"]["KAFKA"]["CONFIG"] = {"enable.auto.commit": True, "linger.ms": 7}
    settings.MESSAGING = messaging
    config = consumer_config()
    assert config["group.id"] == cqrs_settings["queue"]
    assert config["enable.auto.commit"] is False  # offsets go after the replica's commit
    assert config["enable.auto.offset.store"] is False
    assert "linger.ms" not in config  # a producer key
    assert config["session.timeout.ms"] == 2000  # MESSAGING["KAFKA"]["CONSUMER_CONFIG"]


def test_a_missing_confluent_kafka_is_a_check_error(settings, monkeypatch) -> None:
    messaging = copy.deepcopy(settings.MESSAGING)
    messaging["CQRS"]["transport"] = KAFKA_TRANSPORT
    settings.MESSAGING = messaging
    assert "messaging.E305" not in {m.id for m in checks.run_checks()}
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):  # the environment cannot uninstall it for a test
        return None if name == "confluent_kafka" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    (error,) = [m for m in checks.run_checks() if m.id == "messaging.E305"]
    assert "confluent-kafka" in error.msg and "[kafka]" in error.hint


@pytest.mark.parametrize("cqrs_transport", ["kafka"], indirect=True)
def test_a_direct_sync_for_another_queue_is_skipped(cqrs_settings) -> None:
    """One topic per CQRS id carries every service's direct SYNCs: a replica applies those
    for its own queue (``x-cqrs-queue``) and skips, without a dead letter, the others'."""
    from django_messaging.cqrs.transport.kafka_replica import KafkaReplicaConsumer
    from django_messaging.cqrs.transport.wire import QUEUE_HEADER, Delivery

    body = TransportPayload("SYNC", "product", {"id": 1, "name": "n"}, 1).body()
    worker = KafkaReplicaConsumer()
    topic = topic_of("product")
    other = Delivery(topic, {QUEUE_HEADER: "another_service"}, body, (topic, 0, 0))
    assert worker._accept(other) is None
    ours = worker._accept(Delivery(topic, {QUEUE_HEADER: cqrs_settings["queue"]}, body, ()))
    assert ours is not None and ours.queue == cqrs_settings["queue"]
    broadcast = worker._accept(Delivery(topic, {}, body, ()))
    assert broadcast is not None and broadcast.queue is None


@pytest.mark.parametrize("cqrs_transport", ["kafka"], indirect=True)
def test_the_readme_example(cqrs_settings, settings) -> None:
    """The settings of "CQRS over Kafka" (with this test's broker, queue and topics): a save
    and a delete reach the replica through ``cqrs_consume``'s worker."""
    from django_messaging.cqrs.transport.kafka_replica import KafkaReplicaConsumer
    from tests.project.cqrs_app.models import Product, ProductRef

    example = readme_section(ROOT / "packages/cqrs/README.md", "CQRS over Kafka")["MESSAGING"]
    assert set(example["KAFKA"]["GLOBAL_CONFIG"]) == {"bootstrap.servers"}
    messaging = copy.deepcopy(settings.MESSAGING)
    messaging["CQRS"]["transport"] = example["CQRS"]["TRANSPORT"]
    messaging["CQRS"]["KAFKA"] = example["CQRS"]["KAFKA"]
    settings.MESSAGING = messaging
    product = Product.objects.create(name="from the README")
    drain(
        lambda: ProductRef.objects.filter(pk=product.pk).exists(),
        timeout=40,
        consumer_class=KafkaReplicaConsumer,
    )
    product.delete()
    drain(
        lambda: not ProductRef.objects.filter(pk=product.pk).exists(),
        timeout=40,
        consumer_class=KafkaReplicaConsumer,
    )
    (partitions,) = {
        len(t.partitions)
        for name, t in wire_topics(settings).items()
        if name.startswith(cqrs_settings["exchange"])
    }
    assert partitions == 4  # TOPIC_PARTITIONS of the example


def wire_topics(settings) -> dict:
    from confluent_kafka.admin import AdminClient

    servers = settings.MESSAGING["KAFKA"]["GLOBAL_CONFIG"]["bootstrap.servers"]
    return AdminClient({"bootstrap.servers": servers}).list_topics(timeout=10).topics


@pytest.mark.parametrize("cqrs_transport", ["kafka"], indirect=True)
def test_saves_store_what_kafka_did_not_take_and_the_relay_sends_it(
    cqrs_settings, wire, monkeypatch
) -> None:
    """Kafka unreachable: the save's message stays stored, and the saves after it do not each
    wait for the cluster (the thread backs off); the relay sends them once Kafka is back."""
    from django_messaging.core.reconnect import Backoff
    from django_messaging.cqrs.transport import kafka
    from tests.project.cqrs_app.models import Product
    from tests.services import free_port

    monkeypatch.setattr(kafka, "OPEN_TIMEOUT", 0.5)
    monkeypatch.setattr(kafka, "REOPEN", Backoff(initial=120.0, cap=120.0))
    kafka.KafkaTransport.clean_connection()
    cqrs_settings["KAFKA"]["CONFIG"] = {"bootstrap.servers": f"127.0.0.1:{free_port()}"}
    try:
        first = Product.objects.create(name="first")
        second = Product.objects.create(name="second")
    finally:
        kafka._producer.failures, kafka._producer.next_open = 0, 0.0
    errors = dict(PendingMessage.objects.values_list("instance_pk", "last_error"))
    assert "cannot reach Kafka" in errors[str(first.pk)]
    assert "trying again in" in errors[str(second.pk)]

    cqrs_settings["KAFKA"]["CONFIG"] = {}
    relay = PendingRelay(interval=0.05, due_only=False)
    relay.start()
    try:
        drive(relay, lambda: not PendingMessage.objects.exists(), what="the stored messages")
    finally:
        relay.stop()
    keys = [r.key() for r in wire.records(topic_of("product"))]
    assert sorted(keys) == sorted(f"product:{p.pk}".encode() for p in (first, second))
