"""Blocking and non-blocking retries, dead letters, against the broker."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import override_settings

from django_messaging.kafka import kafka
from django_messaging.kafka.retry.consumer import RetryConsumer
from django_messaging.kafka.retry.settings import RetrySettings
from django_messaging.kafka.topic import Topic, TopicConsumer
from tests.helpers import wait_until
from tests.kafka.conftest import (
    FAST,
    committed,
    headers_of,
    make_consumer,
    make_topic,
    produce_raw,
    run_many,
    run_until,
)

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


# --- RetrySettings ------------------------------------------------------------------------


def test_retry_settings_rules():
    rs = RetrySettings(max_retries=3, delay=60, backoff=True)
    assert [rs.get_retry_delay(n) for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert RetrySettings(max_retries=3, delay=60).get_retry_delay(4) == 60
    assert rs.can_retry(3, ValueError()) and not rs.can_retry(4, ValueError())
    assert RetrySettings(max_retries=-1, delay=1).can_retry(10_000, ValueError())
    only = RetrySettings(max_retries=1, delay=1, include=[ValueError])
    assert only.can_retry(1, ValueError()) and not only.can_retry(1, KeyError())
    but = RetrySettings(max_retries=1, delay=1, exclude=[ValueError])
    assert not but.can_retry(1, ValueError()) and but.can_retry(1, KeyError())
    for bad in ({"max_retries": -2, "delay": 1}, {"max_retries": 1, "delay": 0}):
        with pytest.raises(ValueError):
            RetrySettings(**bad)
    with pytest.raises(ValueError):
        RetrySettings(1, 1, include=[ValueError], exclude=[KeyError])


def test_retry_decorator_sets_the_topic_settings():
    @kafka.retry(max_retries=3, delay=120, include=[ValueError])
    class RetryableTopic(Topic):
        name = "topic"

    assert RetryableTopic.retry_settings == RetrySettings(3, 120, include=[ValueError])
    assert RetryableTopic().get_retry_settings().blocking is True


def test_retry_settings_setting_is_read_live():
    topic = make_topic(TopicConsumer, "any")()
    assert topic.get_retry_settings() is None
    with override_settings(
        MESSAGING={"KAFKA": {"RETRY_SETTINGS": {"max_retries": -1, "delay": 10}}}
    ):
        assert topic.get_retry_settings() == RetrySettings(-1, 10)
    with override_settings(
        MESSAGING={}, DJANGO_KAFKA={"RETRY_SETTINGS": {"max_retries": 2, "delay": 1}}
    ):
        assert topic.get_retry_settings() == RetrySettings(2, 1)


# --- blocking -----------------------------------------------------------------------------


def _recording_topic(name: str, seen: list[str], fail: callable, **retry):
    def consume(self, msg):
        value = msg.value().decode()
        seen.append(value)
        if fail(value, seen):
            raise Boom(f"cannot handle {value}")

    cls = make_topic(TopicConsumer, name, consume=consume, atomic=False)
    return kafka.retry(**retry)(cls) if retry else cls


@pytest.mark.parametrize("batch_size", [None, 1])
def test_blocking_retry_resumes_at_the_failed_message(
    create_topic, group, kafka_bootstrap, read, batch_size
):
    """django-kafka #88: the partition was resumed at the last committed offset, so earlier
    messages were processed again on every retry (or, with no committed offset, lost).
    With batches of one, the later messages are still in librdkafka's queue when the
    partition is paused, not held by the consumer."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [f"m{i}".encode() for i in range(5)])
    seen: list[str] = []
    topic = _recording_topic(name, seen, lambda v, s: v == "m1", max_retries=2, delay=0.1)
    consumer = make_consumer(group, topic(), batch_size=batch_size)()
    run_until(consumer, lambda: "m4" in seen)
    assert seen == ["m0", "m1", "m1", "m1", "m2", "m3", "m4"]
    dead = read(f"{group}.{name}.dlt", 1)
    assert [m.value() for m in dead] == [b"m1"]
    assert headers_of(dead[0])["RETRY_ATTEMPT"] == b"2"


def test_blocking_retry_succeeds_on_a_later_attempt(create_topic, group, kafka_bootstrap):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [f"m{i}".encode() for i in range(4)])
    seen: list[str] = []
    topic = _recording_topic(
        name, seen, lambda v, s: v == "m2" and s.count("m2") < 3, max_retries=5, delay=0.1
    )
    consumer = make_consumer(group, topic())()
    run_until(consumer, lambda: "m3" in seen)
    assert seen == ["m0", "m1", "m2", "m2", "m2", "m3"]
    # everything up to the last message was committed when the consumer stopped
    assert committed(kafka_bootstrap, group, name) == [4]


def test_poison_message_goes_to_the_dead_letter_topic_after_max_retries(
    create_topic, group, kafka_bootstrap, read
):
    """django-kafka #51: a message failing forever blocked its partition with no way out."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"poison", b"next"], headers=[("trace", b"abc")])
    seen: list[str] = []
    topic = _recording_topic(name, seen, lambda v, s: v == "poison", max_retries=1, delay=0.1)
    run_until(make_consumer(group, topic())(), lambda: "next" in seen)
    assert seen == ["poison", "poison", "next"]
    dead = read(f"{group}.{name}.dlt", 1)[0]
    headers = headers_of(dead)
    assert dead.value() == b"poison"
    assert headers["trace"] == b"abc"
    assert headers["ORIGINAL_TOPIC"] == name.encode()
    assert headers["ORIGINAL_OFFSET"] == b"0"
    assert headers["EXCEPTION_CLASS"].endswith(b".Boom")
    assert headers["DEAD_LETTER_MESSAGE"] == b"cannot handle poison"
    assert b"Traceback" in headers["EXCEPTION_TRACEBACK"]


def test_infinite_blocking_retries_log_at_a_bounded_rate(
    create_topic, group, kafka_bootstrap, caplog
):
    """django-kafka #91: every attempt was logged with a full traceback."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"stuck"])
    seen: list[str] = []
    topic = _recording_topic(name, seen, lambda v, s: True, max_retries=-1, delay=0.02)
    caplog.set_level(logging.WARNING, logger="django_messaging.kafka")
    run_until(make_consumer(group, topic())(), lambda: len(seen) >= 40, timeout=30)
    retry_logs = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert 1 <= len(retry_logs) <= 7  # attempts 1, 2, 4, 8, 16, 32 (64)
    assert sum(1 for r in retry_logs if r.exc_info) == 1


def test_excluded_exception_is_dead_lettered_at_once(create_topic, group, kafka_bootstrap, read):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"a", b"b"])
    seen: list[str] = []
    topic = _recording_topic(
        name, seen, lambda v, s: v == "a", max_retries=3, delay=0.1, exclude=[Boom]
    )
    run_until(make_consumer(group, topic())(), lambda: "b" in seen)
    assert seen == ["a", "b"]
    assert [m.value() for m in read(f"{group}.{name}.dlt", 1)] == [b"a"]


def test_failure_without_retry_settings_goes_to_dlt(create_topic, group, kafka_bootstrap, read):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"bad", b"good"], key=b"k1")
    seen: list[str] = []
    topic = _recording_topic(name, seen, lambda v, s: v == "bad")
    run_until(make_consumer(group, topic())(), lambda: "good" in seen)
    dead = read(f"{group}.{name}.dlt", 1)
    assert [(m.key(), m.value()) for m in dead] == [(b"k1", b"bad")]


@pytest.mark.parametrize("blocking", [True, False], ids=["dead letter", "retry topic"])
def test_an_error_text_strict_utf8_cannot_encode_still_reaches_its_copy(
    create_topic, group, kafka_bootstrap, read, blocking
):
    """A lone surrogate in an exception's message made the retry/dead-letter headers
    unencodable: the copy was never produced and the consumer crashed on the same message."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"bad", b"good"])
    seen: list[str] = []

    def consume(self, msg):
        value = msg.value().decode()
        seen.append(value)
        if value == "bad":
            raise Boom("broken \ud800 text")

    topic = make_topic(TopicConsumer, name, consume=consume, atomic=False)
    if not blocking:
        topic = kafka.retry(max_retries=1, delay=0.1, blocking=False)(topic)
    run_until(make_consumer(group, topic())(), lambda: "good" in seen)
    copy_topic = f"{group}.{name}.dlt" if blocking else f"{group}.{name}.retry.1"
    copy = read(copy_topic, 1)[0]
    headers = headers_of(copy)
    assert copy.value() == b"bad"
    assert headers["EXCEPTION_MESSAGE"] == b"broken ? text"
    own = "DEAD_LETTER_MESSAGE" if blocking else "RETRY_MESSAGE"
    assert headers[own] == b"broken ? text"


@override_settings()
def test_dead_letter_suffix_setting(create_topic, group, kafka_bootstrap, read, settings):
    settings.MESSAGING = {
        **settings.MESSAGING,
        "KAFKA": {**settings.MESSAGING["KAFKA"], "DEAD_LETTER_TOPIC_SUFFIX": "dead"},
    }
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"bad"])
    seen: list[str] = []
    topic = _recording_topic(name, seen, lambda v, s: True)
    run_until(make_consumer(group, topic())(), lambda: seen)
    assert [m.value() for m in read(f"{group}.{name}.dead", 1)] == [b"bad"]


# --- non-blocking -------------------------------------------------------------------------


def test_non_blocking_retries_follow_the_documented_topic_sequence(
    create_topic, group, kafka_bootstrap, read, admin
):
    """django-kafka dropped the original headers of retried and dead-lettered messages, and
    later versions recorded only the last hop (``retry.2``) as their origin; its retry topics
    were left to broker auto-creation."""
    name = create_topic(partitions=2)
    produce_raw(
        kafka_bootstrap,
        name,
        [b"always-fails", b"fine"],
        key=b"key-1",
        headers=[("h", b"1")],
        partition=1,
    )
    seen: list[tuple[str, str]] = []

    def consume(self, msg):
        value = msg.value().decode()
        seen.append((msg.topic(), value))
        if value == "always-fails":
            raise Boom("nope")

    topic_cls = kafka.retry(max_retries=3, delay=0.1, blocking=False)(
        make_topic(TopicConsumer, name, consume=consume, atomic=False)
    )
    consumer_cls = make_consumer(group, topic_cls(), config={"session.timeout.ms": 2100})
    retry_cls = RetryConsumer.build(consumer_cls)
    assert retry_cls is not None and retry_cls.__name__ == "TestConsumerRetry"
    main, retry = consumer_cls(), retry_cls()
    assert retry.config["group.id"] == f"{group}.retry"
    dlt = f"{group}.{name}.dlt"
    run_many([main, retry], lambda: len([s for s in seen if s[1] == "always-fails"]) >= 4)
    assert [t for t, v in seen if v == "always-fails"] == [
        name,
        f"{group}.{name}.retry.1",
        f"{group}.{name}.retry.2",
        f"{group}.{name}.retry.3",
    ]
    assert "fine" in [v for _, v in seen]
    dead = read(dlt, 1)
    assert [(m.key(), m.value()) for m in dead] == [(b"key-1", b"always-fails")]
    headers = headers_of(dead[0])
    original = next(m for m in read(name, 2) if m.value() == b"always-fails")
    assert headers["h"] == b"1"
    assert headers["ORIGINAL_TOPIC"] == name.encode()
    assert headers["ORIGINAL_PARTITION"] == b"1"
    assert headers["ORIGINAL_OFFSET"] == str(original.offset()).encode()
    assert headers["ORIGINAL_TIMESTAMP"] == str(original.timestamp()[1]).encode()
    assert headers["RETRY_ATTEMPT"] == b"3"
    assert headers["EXCEPTION_CLASS"].endswith(b".Boom")
    assert headers["EXCEPTION_MESSAGE"] == b"nope"
    assert b"Traceback" in headers["EXCEPTION_TRACEBACK"]
    for attempt in (1, 2, 3):  # created like the source topic, not by broker auto-creation
        retry_topic = f"{group}.{name}.retry.{attempt}"
        assert len(admin.list_topics(retry_topic, timeout=10).topics[retry_topic].partitions) == 2
    third = read(f"{group}.{name}.retry.3", 1)[0]
    assert headers_of(third)["RETRY_ATTEMPT"] == b"3"
    assert headers_of(third)["ORIGINAL_TOPIC"] == name.encode()
    assert headers_of(third)["h"] == b"1"


def test_retry_consumer_inherits_the_consumer_class_config(group):
    """django-kafka: the generated retry consumer replaced the class's own ``config``."""
    topic_cls = kafka.retry(max_retries=1, delay=1, blocking=False)(make_topic(TopicConsumer, "x"))
    consumer_cls = make_consumer(
        group, topic_cls(), config={"session.timeout.ms": 2345, "client.id": "mine"}
    )
    config = RetryConsumer.build(consumer_cls).build_config()
    assert config["session.timeout.ms"] == 2345
    assert config["client.id"] == "mine"
    assert config["group.id"] == f"{group}.retry"
    assert config["auto.offset.reset"] == "earliest"  # RETRY_CONSUMER_CONFIG on top
    assert config["enable.auto.offset.store"] is False


def test_registry_registers_the_retry_consumer():
    from django_messaging.kafka.registry import ConsumersRegistry

    registry = ConsumersRegistry()
    blocking = make_consumer("g1", kafka.retry(1, 1)(make_topic(TopicConsumer, "a"))())
    nonblocking = make_consumer(
        "g2", kafka.retry(1, 1, blocking=False)(make_topic(TopicConsumer, "b"))()
    )
    nonblocking.__name__ = "Other"
    registry()(blocking)
    registry()(nonblocking)
    assert list(registry) == [
        f"{__name__.replace('test_retry', 'conftest')}.TestConsumer",
        f"{__name__.replace('test_retry', 'conftest')}.Other",
        f"{__name__.replace('test_retry', 'conftest')}.Other.retry",
    ]
    assert issubclass(registry[f"{nonblocking.__module__}.Other.retry"], nonblocking)


def test_dead_letter_topic_is_created_like_its_source(create_topic, group, kafka_bootstrap, admin):
    """django-kafka relied on broker auto-creation (4 partitions on this broker, or nothing
    where auto-creation is off); the library creates the topic with the source's partitions."""
    name = create_topic(partitions=3)
    produce_raw(kafka_bootstrap, name, [b"bad"])
    seen: list[str] = []
    run_until(
        make_consumer(group, _recording_topic(name, seen, lambda v, s: True)())(), lambda: seen
    )
    dlt = f"{group}.{name}.dlt"
    assert len(admin.list_topics(dlt, timeout=10).topics[dlt].partitions) == 3


@pytest.mark.parametrize("copy", ["dead letter", "retry"])
def test_undelivered_retry_or_dead_letter_copy_keeps_the_original_offset(
    create_topic, group, kafka_bootstrap, monkeypatch, copy
):
    """django-kafka stored the offset right after a fire-and-forget produce to the dead letter
    or retry topic."""
    from django_messaging.kafka.dead_letter import topic as dead_letter
    from django_messaging.kafka.exceptions import DjangoKafkaError
    from django_messaging.kafka.retry import topic as retry_topic

    def refuse(*args, **kwargs):
        raise DjangoKafkaError(f"delivery to the {copy} topic failed: broker said no")

    monkeypatch.setattr(dead_letter if copy == "dead letter" else retry_topic, "deliver", refuse)
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"good", b"bad"])
    seen: list[str] = []
    retry_kwargs = {"max_retries": 2, "delay": 0.1, "blocking": False} if copy == "retry" else {}
    topic = _recording_topic(name, seen, lambda v, s: v == "bad", **retry_kwargs)
    consumer = make_consumer(group, topic())()
    with pytest.raises(DjangoKafkaError, match="broker said no"):
        run_until(consumer, lambda: False, timeout=20)
    assert seen == ["good", "bad"]
    assert committed(kafka_bootstrap, group, name)[0] in (-1001, 0, 1)  # never past "bad"
    monkeypatch.undo()
    again: list[str] = []
    retry = make_consumer(group, _recording_topic(name, again, lambda v, s: False)())()
    run_until(retry, lambda: "bad" in again)


def test_non_blocking_retries_of_a_regex_topic(
    create_topic, group, kafka_bootstrap, unique_name, settings, read
):
    prefix = unique_name("rx")
    name = create_topic(f"{prefix}-one")
    produce_raw(kafka_bootstrap, name, [b"fails"])
    seen: list[str] = []

    def consume(self, msg):
        seen.append(msg.topic())
        raise Boom("no")

    topic_cls = kafka.retry(max_retries=1, delay=0.1, blocking=False)(
        make_topic(TopicConsumer, f"^{prefix}-.*", consume=consume, atomic=False)
    )
    kafka_settings = {
        **settings.MESSAGING["KAFKA"],
        "RETRY_CONSUMER_CONFIG": {
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 300,
        },
    }
    with override_settings(MESSAGING={**settings.MESSAGING, "KAFKA": kafka_settings}):
        consumer_cls = make_consumer(group, topic_cls())
        main, retry = consumer_cls(), RetryConsumer.build(consumer_cls)()
        run_many([main, retry], lambda: read(f"{group}.{name}.dlt", 1, 0.1), timeout=40)
    assert seen == [name, f"{group}.{name}.retry.1"]


# --- rebalance while paused ---------------------------------------------------------------


def test_rebalance_while_a_partition_is_paused_for_a_blocking_retry(
    create_topic, group, kafka_bootstrap
):
    """django-kafka kept pauses and held positions in memory across a rebalance: a partition
    revoked while paused came back paused (or was resumed at the wrong offset). Whoever owns
    the partition after the rebalance retries the failed message at once, from the committed
    offset: nothing handled before it is handled again, nothing after it is lost."""
    name = create_topic(partitions=2)
    produce_raw(kafka_bootstrap, name, [b"a0", b"a1", b"a2"], partition=0)
    produce_raw(kafka_bootstrap, name, [b"b0", b"b1"], partition=1)
    seen: list[tuple[str, str]] = []
    failed: list[str] = []

    def consume(self, msg):
        value = msg.value().decode()
        seen.append((self.owner, value))
        if value == "a1" and not failed:
            failed.append(self.owner)
            raise Boom("a1 fails once")

    # a pause far longer than the test: only the rebalance can bring a1 back in time
    topic_cls = kafka.retry(max_retries=3, delay=300)(
        make_topic(TopicConsumer, name, consume=consume, atomic=False)
    )
    config = {**FAST, "partition.assignment.strategy": "roundrobin"}
    first = make_consumer(group, topic_cls(), config=config, join=True)()
    second = make_consumer(group, topic_cls(), config=config, join=True)()
    first.topics.get(name).owner = "first"
    second.topics.get(name).owner = "second"
    assigned: dict[str, list[int]] = {"first": [], "second": []}
    for label, consumer in (("first", first), ("second", second)):
        on_assign = consumer._on_assign

        def record(c, partitions, label=label, on_assign=on_assign):
            assigned[label] = sorted(p.partition for p in partitions)
            on_assign(c, partitions)

        consumer._on_assign = record
    first.start()
    try:
        # the first member alone: a0 handled, a1 fails and pauses partition 0 (a2 held)
        wait_until(
            lambda: first.run_once() or (failed and (name, 0) in first._pauses),
            timeout=20,
            what="a1 failing on the first member",
        )
        second.start()
        try:

            def settled():
                first.run_once()
                second.run_once()
                values = [v for _, v in seen]
                return (
                    all(v in values for v in ("a2", "b0", "b1"))
                    and values.count("a1") == 2
                    and assigned["second"]
                    and sorted(assigned["first"] + assigned["second"]) == [0, 1]
                )

            wait_until(settled, timeout=30, what="every message handled after the rebalance")
        finally:
            second.stop()
    finally:
        first.stop()
    values = [v for _, v in seen]
    assert sorted(assigned["first"] + assigned["second"]) == [0, 1]
    assert values.count("a0") == 1 and values.count("a2") == 1
    assert values.count("b0") == 1 and values.count("b1") == 1
    # a1 failed once and was handled once more by the partition's owner after the rebalance
    owner_of_0 = "first" if 0 in assigned["first"] else "second"
    assert [o for o, v in seen if v == "a1"] == ["first", owner_of_0]
    assert values.index("a2") > len(values) - 1 - values[::-1].index("a1")
    assert committed(kafka_bootstrap, group, name, partitions=2) == [3, 2]


def test_retry_due_when_the_partition_is_revoked_is_stored_before_the_rebalance(
    create_topic, group, kafka_bootstrap, caplog
):
    """A held message retried successfully just before its partition was revoked: its offset
    must be stored before the rebalance (storing it afterwards fails: the partition is gone,
    and the new owner would handle the message a second time)."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"a0", b"a1", b"a2"])
    seen: list[tuple[str, str]] = []

    def consume(self, msg):
        value = msg.value().decode()
        seen.append((self.owner, value))
        if value == "a1" and len(seen) < 3:
            raise Boom("a1 fails once")

    topic_cls = kafka.retry(max_retries=3, delay=1.5)(
        make_topic(TopicConsumer, name, consume=consume, atomic=False)
    )
    first = make_consumer(group, topic_cls(), config=FAST, join=True)()
    second = make_consumer(group, topic_cls(), config=FAST, join=True)()
    first.topics.get(name).owner = "first"
    second.topics.get(name).owner = "second"
    first.start()
    try:
        wait_until(
            lambda: first.run_once() or (name, 0) in first._pauses,
            timeout=20,
            what="a1 failing on the first member",
        )
        second.start()
        try:
            # the second member asks to join while the first one is busy elsewhere: the
            # revocation waits in the first member's queue until the retry is due
            due = first._pauses.next_due()
            wait_until(
                lambda: second.run_once() or time.monotonic() > due + 0.6,
                timeout=10,
                what="the retry being due",
            )
            first.run_once()  # retries a1 and a2, then serves the revocation

            def settled():
                first.run_once()
                second.run_once()
                return first.assignment() or second.assignment()

            wait_until(settled, timeout=20, what="the rebalance")
            # a member that lost the partition cannot store its offsets, and does not crash
            idle = second if first.assignment() else first
            idle._store({(name, 0): 2})
            assert "offsets of revoked partitions not stored" in caplog.text
            produce_raw(kafka_bootstrap, name, [b"a3"])
            wait_until(
                lambda: first.run_once() or second.run_once() or ("a3" in [v for _, v in seen]),
                timeout=20,
                what="a3",
            )
        finally:
            second.stop()
    finally:
        first.stop()
    assert [v for _, v in seen] == ["a0", "a1", "a1", "a2", "a3"]
    assert committed(kafka_bootstrap, group, name) == [4]


def test_retry_topic_suffix_setting_names_and_matches_the_retry_topics(settings):
    import re

    from django_messaging.kafka.retry.topic import (
        parse_retry_topic,
        retry_topic_name,
        retry_topic_regex,
    )

    settings.MESSAGING = {
        **settings.MESSAGING,
        "KAFKA": {**settings.MESSAGING["KAFKA"], "RETRY_TOPIC_SUFFIX": "again"},
    }
    topic = make_topic(TopicConsumer, "orders.v1")()
    assert retry_topic_name("grp", "orders.v1", 2) == "grp.orders.v1.again.2"
    pattern = re.compile(retry_topic_regex("grp", topic))
    assert pattern.match("grp.orders.v1.again.2")
    assert not pattern.match("grp.orders.v1.retry.2")
    assert not pattern.match("grp.ordersXv1.again.2")  # dots are literal
    assert parse_retry_topic("grp", "grp.orders.v1.again.12") == ("orders.v1", 12)


def test_paused_partition_given_back_to_the_same_member_is_retried_at_once(
    create_topic, group, kafka_bootstrap
):
    """The other half of a rebalance: the member that paused the partition gets it back
    (the second member subscribes to another topic of the group). librdkafka keeps a
    partition's pause flag across the revocation, so without resuming it the partition
    would stay paused for the whole (300 s) delay."""
    name, other = create_topic(), create_topic()
    produce_raw(kafka_bootstrap, name, [b"a0", b"a1", b"a2"])
    seen: list[str] = []

    def consume(self, msg):
        value = msg.value().decode()
        seen.append(value)
        if value == "a1" and seen.count("a1") == 1:
            raise Boom("a1 fails once")

    topic_cls = kafka.retry(max_retries=3, delay=300)(
        make_topic(TopicConsumer, name, consume=consume, atomic=False)
    )
    first = make_consumer(group, topic_cls(), config=FAST, join=True)()
    other_topic = _recording_topic(other, [], lambda v, s: False)()
    second = make_consumer(group, other_topic, config=FAST, join=True)()
    first.start()
    try:
        wait_until(
            lambda: first.run_once() or (name, 0) in first._pauses,
            timeout=20,
            what="a1 failing",
        )
        second.start()
        try:
            wait_until(
                lambda: first.run_once() or second.run_once() or "a2" in seen,
                timeout=30,
                what="a1 retried after the rebalance",
            )
            assert all(tp.topic == other for tp in second.assignment())
        finally:
            second.stop()
    finally:
        first.stop()
    assert seen == ["a0", "a1", "a1", "a2"]
    assert committed(kafka_bootstrap, group, name) == [3]


def test_retry_and_dead_letter_copies_carry_django_kafkas_headers(
    create_topic, group, kafka_bootstrap, read
):
    """What django-kafka 0.5.13 puts on a retry copy (``RETRY_MESSAGE``, ``RETRY_TIMESTAMP``:
    the due time as epoch seconds) and a dead letter (``DEAD_LETTER_MESSAGE``,
    ``DEAD_LETTER_DETAIL``: the traceback), read with its header classes, which are ``Header``s."""
    from django_messaging.kafka.dead_letter.header import DeadLetterHeader
    from django_messaging.kafka.retry.header import RetryHeader

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"x"])

    def consume(self, msg):
        raise Boom("no luck")

    topic_cls = kafka.retry(max_retries=1, delay=30, blocking=False)(
        make_topic(TopicConsumer, name, consume=consume, atomic=False)
    )
    consumer = make_consumer(group, topic_cls())()
    before = time.time()
    run_until(consumer, lambda: read(f"{group}.{name}.retry.1", 1, timeout=0.5))
    copy = read(f"{group}.{name}.retry.1", 1)[0]
    headers = copy.headers()
    assert RetryHeader.get(headers, RetryHeader.MESSAGE) == b"no luck"
    due = float(RetryHeader.get(headers, RetryHeader.TIMESTAMP))
    assert before + 30 <= due <= time.time() + 30
    assert RetryHeader.get_retry_time(headers).timestamp() == pytest.approx(due)

    retry_consumer = RetryConsumer.build(type(consumer))()
    retry_consumer.dead_letter_msg(copy, Boom("still no luck"), attempt=1)
    dead = read(f"{group}.{name}.dlt", 1)[0]
    assert DeadLetterHeader.get(dead.headers(), DeadLetterHeader.MESSAGE) == b"still no luck"
    assert DeadLetterHeader.list(dead.headers(), DeadLetterHeader.DETAIL)


# --- log_every (django-kafka 0.9) and the newest dead letter headers ----------------------


def test_log_every_picks_the_blocking_attempts_that_are_logged(
    create_topic, group, kafka_bootstrap, read, caplog
):
    """``log_every=N`` logs attempts N, 2N, ... (the first of them with the traceback), ``0``
    none; without it, attempts 1, 2, 4, ... The dead letter is logged whatever it says."""
    names = {every: create_topic() for every in (None, 2, 0)}
    seen: list[str] = []
    topics = []
    for every, name in names.items():
        produce_raw(kafka_bootstrap, name, [b"stuck"])
        topics.append(
            _recording_topic(
                name, seen, lambda v, s: True, max_retries=4, delay=0.02, log_every=every
            )()
        )
    caplog.set_level(logging.WARNING, logger="django_messaging.kafka")
    run_until(make_consumer(group, *topics)(), lambda: len(seen) == 15, timeout=30)
    logged: dict[str, list[tuple[int, bool]]] = {name: [] for name in names.values()}
    for record in caplog.records:
        if "retrying in" in record.getMessage():
            logged[record.args[1]].append((record.args[4], bool(record.exc_info)))
    assert logged == {
        names[None]: [(1, True), (2, False), (4, False)],
        names[2]: [(2, True), (4, False)],
        names[0]: [],
    }
    dead_letter_logs = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert sorted(r.args[1] for r in dead_letter_logs) == sorted(names.values())
    for name in names.values():
        assert [m.value() for m in read(f"{group}.{name}.dlt", 1)] == [b"stuck"]


def test_log_every_is_checked_and_read_from_the_setting():
    assert RetrySettings(1, 1, log_every=3) != RetrySettings(1, 1)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="log_every"):
            RetrySettings(1, 1, log_every=bad)
    topic = make_topic(TopicConsumer, "any")()
    with override_settings(
        MESSAGING={"KAFKA": {"RETRY_SETTINGS": {"max_retries": 3, "delay": 1, "log_every": 2}}}
    ):
        assert topic.get_retry_settings().log_every == 2


def test_non_blocking_retries_log_every_and_the_dead_letter_names_the_last_hop(
    create_topic, group, kafka_bootstrap, read, caplog
):
    """django-kafka 0.9+ headers: ``DEAD_LETTER_SUMMARY`` and the topic, partition and offset
    the dead-lettered copy was read from (the last retry topic), next to ours."""
    from django_messaging.kafka.dead_letter.header import DeadLetterHeader

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"always-fails"])
    seen: list[str] = []

    def consume(self, msg):
        seen.append(msg.topic())
        raise Boom("nope")

    topic_cls = kafka.retry(max_retries=3, delay=0.05, blocking=False, log_every=2)(
        make_topic(TopicConsumer, name, consume=consume, atomic=False)
    )
    consumer_cls = make_consumer(group, topic_cls())
    main, retry = consumer_cls(), RetryConsumer.build(consumer_cls)()
    caplog.set_level(logging.INFO, logger="django_messaging.kafka")
    dlt = f"{group}.{name}.dlt"
    run_many([main, retry], lambda: read(dlt, 1, 0.1), timeout=40)
    sent_to = [r.args[4] for r in caplog.records if "sent to" in r.getMessage()]
    assert sent_to == [f"{group}.{name}.retry.2"]  # attempts 1 and 3 not logged

    (dead,) = read(dlt, 1)
    (last_hop,) = read(f"{group}.{name}.retry.3", 1)
    headers = dead.headers()
    assert DeadLetterHeader.get(headers, DeadLetterHeader.SUMMARY) == b"nope"
    assert DeadLetterHeader.get(headers, DeadLetterHeader.MESSAGE) == b"nope"
    assert b"Traceback" in DeadLetterHeader.get(headers, DeadLetterHeader.DETAIL)
    assert (
        DeadLetterHeader.get(headers, DeadLetterHeader.MESSAGE_TOPIC) == last_hop.topic().encode()
    )
    assert (
        DeadLetterHeader.get(headers, DeadLetterHeader.MESSAGE_PARTITION)
        == str(last_hop.partition()).encode()
    )
    assert (
        DeadLetterHeader.get(headers, DeadLetterHeader.MESSAGE_OFFSET)
        == str(last_hop.offset()).encode()
    )
    assert headers_of(dead)["ORIGINAL_TOPIC"] == name.encode()
    # each header once: the ones a retry copy carried were replaced, not repeated
    names_seen = [key for key, _ in headers]
    assert len(names_seen) == len(set(names_seen)), names_seen
