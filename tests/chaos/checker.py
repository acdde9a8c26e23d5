"""Progress counters for the monitor, and the final proof from the databases and brokers.

Runs in the harness process, which Django set up against the database directly (not through
the proxy the workers use)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pika
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from django.db.models import Count, F, Sum

from tests.chaos.cluster import Cluster
from tests.chaos.load import DOGS

PIPELINES = ("outbox", "cqrs", "kafka", "eventstore")


class Progress:
    """``produced`` (committed at the source) and ``delivered`` (applied at the destination)."""

    def __init__(self, cluster: Cluster) -> None:
        from django_messaging.eventstore.conf import application_env
        from tests.project.eventstore_app.domain import TrainingSchool, TrickCounter

        self.cluster = cluster
        self.school = TrainingSchool(env=application_env())
        self.counter = TrickCounter(env=application_env())
        self.kafka = Consumer(
            {"bootstrap.servers": cluster.kafka.bootstrap, "group.id": f"{cluster.group}-watch"}
        )

    def kafka_offsets(self) -> int:
        topic = self.cluster.topic
        partitions = self.kafka.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            self.kafka.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        )

    def sample(self, kafka_garbage: int) -> dict[str, tuple[int, int]]:
        from tests.project.cqrs_app.models import Product, ProductRef
        from tests.project.kafka_app.models import Handled
        from tests.project.outbox_app.models import Order, PlainModel

        def changes(model: Any) -> int:
            found = model.objects.aggregate(n=Sum(F("cqrs_revision") + 1))["n"]
            return int(found or 0)

        return {
            "outbox": (PlainModel.objects.count(), Order.objects.count()),
            "cqrs": (changes(Product), changes(ProductRef)),
            "kafka": (
                self.kafka_offsets() - kafka_garbage,
                Handled.objects.filter(topic=self.cluster.topic).values("value").distinct().count(),
            ),
            "eventstore": (
                self.school.recorder.max_notification_id() or 0,
                self.counter.recorder.max_tracking_id("TrainingSchool") or 0,
            ),
        }

    def close(self) -> None:
        self.kafka.close()


@dataclass
class Verdict:
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)


def check(cluster: Cluster, garbage: dict[str, int], logs: dict[str, str]) -> Verdict:
    """Everything committed reached its destination once. ``logs``: the workers' output by
    name; their "skipped, seen before" lines count the duplicates delivered."""
    verdict = Verdict()
    _outbox(cluster, garbage.get("outbox", 0), logs.get("subscriber", ""), verdict)
    _cqrs(cluster, garbage.get("cqrs", 0), logs.get("cqrs_consume", ""), verdict)
    _kafka(cluster, garbage.get("kafka", 0), logs.get("kafka_consume", ""), verdict)
    _eventstore(verdict)
    return verdict


def _outbox(cluster: Cluster, garbage: int, log: str, verdict: Verdict) -> None:
    from django_messaging.outbox.choices import StatusChoice
    from django_messaging.outbox.models import Published, Received
    from tests.project.outbox_app.models import Order, PlainModel

    committed = {str(pk) for pk in PlainModel.objects.values_list("pk", flat=True)}
    orders = Order.objects.values("number").annotate(n=Count("id"))
    applied = {o["number"] for o in orders}
    twice = sum(o["n"] - 1 for o in orders)
    unsent = Published.objects.exclude(status=StatusChoice.SUCCEEDED).count()
    dead = _drain_amqp(cluster, f"DLQ.{cluster.outbox_queue}")
    real_dead = [h for h, _ in dead if "chaos-garbage" not in h]
    unexplained = [h for h, _ in dead if not h.get("dop-dead-letter-reason")]
    lost = committed - applied
    verdict.figures["outbox"] = {
        "messages": len(committed),
        "lost": len(lost),
        "duplicates delivered": log.count("already processed"),
        "duplicates applied": twice,
        "garbage sent": garbage,
        "garbage dead-lettered": len(dead) - len(real_dead),
        "received rows": Received.objects.count(),
    }
    verdict.expect(
        not lost, f"outbox: {len(lost)} committed rows never applied: {sorted(lost)[:10]}"
    )
    verdict.expect(
        not applied - committed, f"outbox: orders of no row: {sorted(applied - committed)[:10]}"
    )
    verdict.expect(twice == 0, f"outbox: {twice} messages applied twice")
    verdict.expect(unsent == 0, f"outbox: {unsent} outbox rows not marked sent")
    verdict.expect(not real_dead, f"outbox: real messages dead-lettered: {real_dead[:3]}")
    verdict.expect(not unexplained, f"outbox: dead letters without a reason: {unexplained[:3]}")
    verdict.expect(
        len(dead) - len(real_dead) == garbage,
        f"outbox: {garbage} garbage sent, {len(dead) - len(real_dead)} dead-lettered",
    )


def _cqrs(cluster: Cluster, garbage: int, log: str, verdict: Verdict) -> None:
    from django_messaging.cqrs.models import PendingMessage
    from tests.project.cqrs_app.models import Product, ProductRef

    fields = ("pk", "name", "price", "cqrs_revision")
    master = {p[0]: p for p in Product.objects.values_list(*fields)}
    replica = {p[0]: p for p in ProductRef.objects.values_list(*fields)}
    missing = master.keys() - replica.keys()
    differ = [pk for pk in master.keys() & replica.keys() if master[pk] != replica[pk]]
    dead = _drain_amqp(cluster, f"dead_letter_{cluster.cqrs_queue}")
    real_dead = [(h, b) for h, b in dead if _is_real_cqrs(b)]
    unexplained = [h for h, _ in dead if not h.get("x-cqrs-error")]
    changes = sum(p[3] + 1 for p in master.values())
    verdict.figures["cqrs"] = {
        "messages": changes,
        "lost": len(missing) + len(differ),
        # a change delivered again, or after a newer one: dropped by its revision
        "duplicates delivered": len(_DROPPED_REVISION.findall(log)),
        "duplicates applied": 0 if not differ else "see failures",
        "garbage sent": garbage,
        "garbage dead-lettered": len(dead) - len(real_dead),
        "pending rows left": PendingMessage.objects.count(),
    }
    verdict.expect(
        not missing, f"cqrs: {len(missing)} master rows without a replica: {sorted(missing)[:10]}"
    )
    verdict.expect(
        not differ,
        f"cqrs: replica differs from master: {[(master[pk], replica[pk]) for pk in differ[:5]]}",
    )
    verdict.expect(not replica.keys() - master.keys(), "cqrs: replica rows of no master row")
    verdict.expect(not real_dead, f"cqrs: real messages dead-lettered: {real_dead[:3]}")
    verdict.expect(not unexplained, f"cqrs: dead letters without x-cqrs-error: {unexplained[:3]}")
    verdict.expect(
        len(dead) - len(real_dead) == garbage,
        f"cqrs: {garbage} garbage sent, {len(dead) - len(real_dead)} dead-lettered",
    )


#: The replica's line for a change it already has (one message, or one of a batch).
_DROPPED_REVISION = re.compile(r"cqrs_id=\S+ pk=\S+: (?:duplicate |stale )?revision \S+ dropped")


def _is_real_cqrs(body: bytes) -> bool:
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("cqrs_id") == "product"


def _kafka(cluster: Cluster, garbage: int, log: str, verdict: Verdict) -> None:
    from tests.project.kafka_app.models import Handled

    produced = _read_topic(cluster, cluster.topic)
    real = {json.loads(v)["seq"] for k, v, _ in produced if not k.startswith(b"garbage-")}
    sent_garbage = {k for k, _, _ in produced if k.startswith(b"garbage-")}
    rows = Handled.objects.filter(topic=cluster.topic).values("value").annotate(n=Count("id"))
    applied = {int(r["value"]) for r in rows}
    twice = sum(r["n"] - 1 for r in rows)
    dead = _read_topic(cluster, f"{cluster.group}.{cluster.topic}.dlt")
    dead_keys = {k for k, _, h in dead if h.get("EXCEPTION_CLASS")}
    lost = real - applied
    skipped = log.count(" handled before (")  # the inbox's line for a redelivered message
    verdict.figures["kafka"] = {
        "messages": len(real),
        "lost": len(lost),
        "duplicates delivered": skipped + twice,
        "duplicates applied": twice,
        "garbage sent": garbage,
        "garbage dead-lettered": len(dead_keys & sent_garbage),
    }
    verdict.expect(not lost, f"kafka: {len(lost)} produced messages never handled")
    # the soak's topic is idempotent (``ChaosTopic``): a redelivered message is skipped
    verdict.expect(twice == 0, f"kafka: {twice} messages applied twice (idempotent topic)")
    verdict.expect(not applied - real, "kafka: handled values that were never produced")
    verdict.expect(
        len(sent_garbage) == garbage,
        f"kafka: {garbage} garbage acknowledged, {len(sent_garbage)} in the topic",
    )
    verdict.expect(
        sent_garbage <= dead_keys,
        f"kafka: garbage not dead-lettered with a reason: {sorted(sent_garbage - dead_keys)[:5]}",
    )
    verdict.expect(not {k for k, _, _ in dead} - sent_garbage, "kafka: real messages dead-lettered")


def _eventstore(verdict: Verdict) -> None:
    from django_messaging.eventstore.conf import application_env
    from tests.project.eventstore_app.domain import TrainingSchool, TrickCounter

    school, counter = TrainingSchool(env=application_env()), TrickCounter(env=application_env())
    tricks, counted = 0, 0
    wrong = []
    for dog in DOGS:
        try:
            learnt = len(school.get_tricks(dog))
        except Exception:  # never registered
            learnt = 0
        seen = counter.get_count(dog)
        tricks, counted = tricks + learnt, counted + seen
        if learnt != seen:
            wrong.append((dog, learnt, seen))
    last, tracked = (
        school.recorder.max_notification_id(),
        counter.recorder.max_tracking_id("TrainingSchool"),
    )
    verdict.figures["eventstore"] = {
        "messages": last or 0,
        "lost": sum(max(0, a - b) for _, a, b in wrong),
        "duplicates delivered": "not counted",
        "duplicates applied": sum(max(0, b - a) for _, a, b in wrong),
        "tricks": tricks,
    }
    verdict.expect(not wrong, f"eventstore: follower counts differ (dog, tricks, counted): {wrong}")
    verdict.expect(last == tracked, f"eventstore: follower at {tracked}, leader at {last}")


def _drain_amqp(cluster: Cluster, queue: str) -> list[tuple[dict[str, Any], bytes]]:
    connection = pika.BlockingConnection(pika.URLParameters(cluster.rabbit.url))
    found: list[tuple[dict[str, Any], bytes]] = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append(({**(properties.headers or {})}, body))
    except pika.exceptions.ChannelClosedByBroker:  # never declared: nothing was dead-lettered
        return found
    finally:
        if connection.is_open:
            connection.close()


def _read_topic(cluster: Cluster, topic: str) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.kafka.bootstrap,
            "group.id": f"{cluster.group}-checker",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        found, done = [], {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            msg = consumer.poll(5)
            if msg is None:
                raise RuntimeError(f"reading {topic}: stopped short of {ends}")
            if msg.error():
                continue
            headers = {k: v for k, v in (msg.headers() or [])}
            found.append((msg.key() or b"", msg.value() or b"", headers))
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        return found
    finally:
        consumer.close()
