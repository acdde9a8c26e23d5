"""The consumer loop against the broker: offsets, config, transactions, bad input."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.serialization import MessageField
from django.db import OperationalError, connection
from django.db.utils import load_backend
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_messaging.kafka.consumer import Consumer, Topics
from django_messaging.kafka.error_handlers import ClientErrorHandler
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.topic import TopicConsumer
from tests.helpers import wait_until
from tests.kafka.conftest import (
    committed,
    headers_of,
    make_consumer,
    make_topic,
    produce_raw,
    run_until,
)
from tests.project.kafka_app.models import Handled
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db


def _collect(name: str, seen: list, **attrs):
    def consume(self, msg):
        seen.append(msg.value().decode())

    return make_topic(TopicConsumer, name, consume=consume, **attrs)


def test_offsets_are_stored_even_when_the_user_enables_auto_offset_store(
    create_topic, group, kafka_bootstrap
):
    """django-kafka: without ``enable.auto.offset.store: False`` store_offsets raised
    ``_INVALID_ARG`` on the first message and the consumer died."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"a", b"b", b"c"])
    seen: list[str] = []
    consumer = make_consumer(
        group, _collect(name, seen)(), config={"enable.auto.offset.store": True}
    )()
    assert consumer.config["enable.auto.offset.store"] is False
    run_until(consumer, lambda: len(seen) == 3)
    assert committed(kafka_bootstrap, group, name) == [3]


def test_a_restarted_consumer_continues_after_the_committed_offset(
    create_topic, group, kafka_bootstrap
):
    name = create_topic(partitions=3)
    produce_raw(kafka_bootstrap, name, [f"a{i}".encode() for i in range(9)])
    first: list[str] = []
    run_until(make_consumer(group, _collect(name, first)())(), lambda: len(first) == 9)
    produce_raw(kafka_bootstrap, name, [b"b0", b"b1"])
    second: list[str] = []
    run_until(make_consumer(group, _collect(name, second)())(), lambda: len(second) == 2)
    assert sorted(first) == [f"a{i}" for i in range(9)]
    assert sorted(second) == ["b0", "b1"]


def test_regex_topic_consumes_every_matching_topic(
    create_topic, group, kafka_bootstrap, unique_name
):
    prefix = unique_name("rx")
    one, two = create_topic(f"{prefix}-one"), create_topic(f"{prefix}-two")
    produce_raw(kafka_bootstrap, one, [b"1"])
    produce_raw(kafka_bootstrap, two, [b"2"])
    seen: list[str] = []
    topic = _collect(f"^{prefix}-.*", seen)()
    assert topic.is_regex() and topic.matches(one) and not topic.matches("other")
    run_until(make_consumer(group, topic)(), lambda: len(seen) == 2)
    assert sorted(seen) == ["1", "2"]


@pytest.mark.parametrize(
    ("topic_atomic", "setting", "kept"),
    [
        (None, True, ["keep"]),
        (None, False, ["fail", "keep"]),
        (False, True, ["fail", "keep"]),
        (True, False, ["keep"]),
    ],
)
def test_a_failing_handler_rolls_back_its_database_writes(
    create_topic, group, kafka_bootstrap, read, settings, topic_atomic, setting, kept
):
    """django-kafka ran handlers without a transaction: a handler failing after a write left
    the write behind. Here the ``ATOMIC`` setting and a topic's ``atomic`` decide."""
    settings.MESSAGING = {
        **settings.MESSAGING,
        "KAFKA": {**settings.MESSAGING["KAFKA"], "ATOMIC": setting},
    }
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"keep", b"fail"])

    def consume(self, msg):
        value = msg.value().decode()
        Handled.objects.create(topic=msg.topic(), value=value)
        if value == "fail":
            raise ValueError("after the write")

    topic = make_topic(TopicConsumer, name, consume=consume, atomic=topic_atomic)
    run_until(make_consumer(group, topic())(), lambda: read(f"{group}.{name}.dlt", 1, 0.2))
    assert sorted(Handled.objects.filter(topic=name).values_list("value", flat=True)) == kept


def test_a_database_outage_does_not_dead_letter_messages(
    create_topic, group, kafka_bootstrap, caplog
):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"x", b"y"])
    calls: list[str] = []

    def consume(self, msg):
        calls.append(msg.value().decode())
        if len(calls) <= 3:
            raise OperationalError("server closed the connection unexpectedly")

    topic = make_topic(TopicConsumer, name, consume=consume, atomic=False)
    consumer_cls = make_consumer(group, topic(), transient_error_delay=0.05)
    caplog.set_level(logging.WARNING, logger="django_messaging.kafka")
    run_until(consumer_cls(), lambda: "y" in calls)
    assert calls == ["x", "x", "x", "x", "y"]
    assert not any("dead-lettered" in r.getMessage() for r in caplog.records)
    assert committed(kafka_bootstrap, group, name) == [2]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("narrowed", [False, True], ids=["default", "transient_errors=()"])
def test_waits_on_an_unreachable_database_back_off(
    create_topic, group, kafka_bootstrap, read, narrowed
):
    """The waits between attempts at a message double while the database stays away (the
    core back-off), instead of polling it at a fixed rate; the message is not dead-lettered,
    also by a consumer whose ``transient_errors`` leave the connection errors out."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to lose")
    db_settings = connection.settings_dict
    proxy = TcpProxy((db_settings["HOST"] or "127.0.0.1", int(db_settings["PORT"] or 5432)))
    proxy.start()
    backend = load_backend(db_settings["ENGINE"])
    # The handler's database, reached through the proxy: cut, it refuses every connection.
    # Without a connection pool, which would wait its timeout (30 s) for each connection.
    options = {k: v for k, v in db_settings["OPTIONS"].items() if k != "pool"}
    away = backend.DatabaseWrapper(
        {**db_settings, "HOST": "127.0.0.1", "PORT": proxy.port, "OPTIONS": options}
    )
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"x"])
    attempts: list[float] = []
    handled: list[str] = []

    def consume(self, msg):
        attempts.append(time.monotonic())
        if len(attempts) == 7:
            proxy.restore()
        away.close()
        with away.cursor() as cursor:
            cursor.execute("SELECT 1")
        handled.append(msg.value().decode())

    topic = make_topic(TopicConsumer, name, consume=consume, atomic=False)
    consumer_cls = make_consumer(
        group, topic(), transient_error_delay=0.05, transient_error_max_delay=1.6
    )
    if narrowed:
        consumer_cls.transient_errors = ()
    proxy.cut()
    try:
        run_until(consumer_cls(), lambda: handled, timeout=30)
    finally:
        proxy.stop()
        away.close()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(gaps) == 6
    # nominal waits 0.05, 0.1, 0.2, 0.4, 0.8, 1.6 s, each jittered over its upper half
    assert gaps[-1] >= 0.8, gaps
    assert gaps[-1] > 4 * gaps[0], gaps
    assert read(f"{group}.{name}.dlt", 1, timeout=1) == []


def test_garbage_payload_is_dead_lettered_and_the_consumer_goes_on(
    create_topic, group, kafka_bootstrap, read
):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"\xff{not json", b'{"ok": 1}'])
    seen: list = []

    def consume(self, msg):
        seen.append(self.deserialize(msg.value(), MessageField.VALUE, msg.headers()))

    topic = make_topic(
        TopicConsumer, name, consume=consume, value_deserializer="json", atomic=False
    )
    run_until(make_consumer(group, topic())(), lambda: seen)
    assert seen == [{"ok": 1}]
    dead = read(f"{group}.{name}.dlt", 1)[0]
    assert dead.value() == b"\xff{not json"
    assert b"SerializerError" in headers_of(dead)["EXCEPTION_CLASS"]


def test_message_of_an_unknown_topic_is_dead_lettered(create_topic, group, kafka_bootstrap, read):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"orphan"])

    class Narrow(Consumer):
        topics = Topics(_collect("something-else", [])())
        config = {"group.id": group, "auto.offset.reset": "earliest"}
        polling_freq = 0.2

        def start(self):
            self.assign([TopicPartition(name, 0)])

    run_until(Narrow(), lambda: read(f"{group}.{name}.dlt", 1, 0.2))
    assert committed(kafka_bootstrap, group, name) == [1]


def test_consumer_config_precedence_and_live_settings(group):
    cls = make_consumer(group, config={"session.timeout.ms": 6000})
    with override_settings(
        MESSAGING={
            "KAFKA": {
                "CLIENT_ID": "from-settings",
                "GLOBAL_CONFIG": {
                    "bootstrap.servers": "x:1",
                    "fetch.wait.max.ms": 1,
                    "linger.ms": 5,
                },
                "CONSUMER_CONFIG": {"fetch.wait.max.ms": 2, "session.timeout.ms": 3000},
                "POLLING_FREQUENCY": 0.5,
                "RETRY_SETTINGS": None,
            }
        }
    ):
        config = cls.build_config()
        assert config["client.id"] == "from-settings"
        assert config["bootstrap.servers"] == "x:1"
        assert config["fetch.wait.max.ms"] == 2  # CONSUMER_CONFIG over GLOBAL_CONFIG
        assert config["session.timeout.ms"] == 6000  # class config over CONSUMER_CONFIG
        assert isinstance(config["error_cb"], ClientErrorHandler)
        consumer = type("P", (cls,), {"polling_freq": None})()
        assert consumer.get_polling_freq() == 0.5
        consumer.close()
    with override_settings(MESSAGING={"KAFKA": {"CONSUMER_CONFIG": {"client.id": "own"}}}):
        assert cls.build_config()["client.id"] == "own"
    with override_settings(
        MESSAGING={"KAFKA": {"ERROR_HANDLER": f"{__name__}.RecordingErrorHandler"}}
    ):
        assert isinstance(cls.build_config()["error_cb"], RecordingErrorHandler)


class RecordingErrorHandler(ClientErrorHandler):
    pass


def test_legacy_django_kafka_setting_is_read(group):
    with override_settings(MESSAGING={}, DJANGO_KAFKA={"CLIENT_ID": "legacy-id"}):
        assert make_consumer(group).build_config()["client.id"] == "legacy-id"


def test_error_handler_raises_on_fatal_errors_only(caplog):
    handler = ClientErrorHandler()
    with pytest.raises(DjangoKafkaError):
        handler(KafkaError(KafkaError._FATAL, "fatal", fatal=True))
    caplog.set_level(logging.WARNING)
    handler(KafkaError(KafkaError._ALL_BROKERS_DOWN, "down"))
    assert "down" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [True, False])
def test_a_killed_database_connection_is_replaced_and_the_message_retried(
    create_topic, group, kafka_bootstrap, read, atomic
):
    """django-kafka had no connection hygiene: after a database restart every message failed
    and went to the dead letter topic. Here the server really drops the connection."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no server connection to terminate")
    import psycopg

    from tests import services

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"a", b"b"])
    killed: list[int] = []

    def consume(self, msg):
        value = msg.value().decode()
        if value == "b" and not killed:
            connection.ensure_connection()
            pid = connection.connection.info.backend_pid
            parts = services.url_parts(services.POSTGRES_URL)
            with psycopg.connect(
                host=parts["host"],
                port=parts["port"] or 5432,
                user=parts["user"] or "postgres",
                dbname="postgres",
                autocommit=True,
            ) as admin_conn:
                admin_conn.execute("SELECT pg_terminate_backend(%s)", [pid])
            killed.append(pid)
        Handled.objects.create(topic=name, value=value)

    topic = make_topic(TopicConsumer, name, consume=consume, atomic=atomic)
    consumer = make_consumer(group, topic(), transient_error_delay=0.05)()
    run_until(consumer, lambda: Handled.objects.filter(topic=name, value="b").exists())
    assert killed
    assert sorted(Handled.objects.filter(topic=name).values_list("value", flat=True)) == ["a", "b"]
    assert read(f"{group}.{name}.dlt", 1, timeout=1) == []


def test_messages_produced_by_a_handler_are_delivered_before_its_offset_is_stored(
    create_topic, group, kafka_bootstrap, read
):
    from django_messaging.kafka import kafka
    from django_messaging.kafka.topic import TopicProducer

    source, target = create_topic(), create_topic()
    produce_raw(kafka_bootstrap, source, [b"1", b"2", b"3"])
    out = make_topic(TopicProducer, target)

    def consume(self, msg):
        out().produce(msg.value().decode() + "-echo")

    topic = make_topic(TopicConsumer, source, consume=consume, atomic=False)
    consumer = make_consumer(group, topic())()
    pending_at_store: list[int] = []

    class StoreSpy:
        """The confluent consumer, noting what is still undelivered when offsets are stored."""

        def __init__(self, wrapped):
            self.wrapped = wrapped

        def __getattr__(self, name):
            return getattr(self.wrapped, name)

        def store_offsets(self, *args, **kwargs):
            pending_at_store.append(len(kafka.producer))
            return self.wrapped.store_offsets(*args, **kwargs)

    consumer._consumer = StoreSpy(consumer._consumer)
    run_until(consumer, lambda: pending_at_store)
    assert pending_at_store and all(pending == 0 for pending in pending_at_store)
    assert sorted(m.value() for m in read(target, 3)) == [b"1-echo", b"2-echo", b"3-echo"]


def test_consumer_consume_can_suppress_what_handlers_produce(
    create_topic, group, kafka_bootstrap, read
):
    from django_messaging.kafka import kafka, producer
    from django_messaging.kafka.topic import TopicProducer

    source, target = create_topic(), create_topic()
    produce_raw(kafka_bootstrap, source, [b"x"])
    out = make_topic(TopicProducer, target)
    seen: list[str] = []

    def consume(self, msg):
        seen.append(msg.value().decode())
        out().produce("echo")

    class Quiet(make_consumer(group, make_topic(TopicConsumer, source, consume=consume)())):
        @producer.suppress
        def consume(self, *args, **kwargs):
            return super().consume(*args, **kwargs)

    run_until(Quiet(), lambda: seen)
    kafka.producer.produce(target, b"end")  # an echo, had it been produced, would come first
    kafka.producer.flush(5)
    assert [m.value() for m in read(target, 1)] == [b"end"]


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads=st.lists(st.binary(max_size=64), min_size=5, max_size=15))
def test_garbage_never_stops_a_model_consumer(
    create_topic, unique_name, kafka_bootstrap, read, payloads
):
    from django_messaging.kafka.topic.debezium import DbzModelTopicConsumer
    from tests.project.kafka_app.models import Product

    name, group = create_topic(), unique_name("g")
    produce_raw(kafka_bootstrap, name, payloads, key=b"\x00garbage")
    produce_raw(kafka_bootstrap, name, [b'{"id": 424242, "name": "after"}'], key=b'{"id": 424242}')
    topic = make_topic(DbzModelTopicConsumer, name, model=Product)
    run_until(make_consumer(group, topic())(), lambda: Product.objects.filter(id=424242).exists())
    Product.objects.filter(id=424242).delete()
    assert len(read(f"{group}.{name}.dlt", len(payloads))) == len(payloads)


def test_without_auto_commit_each_batch_is_committed(create_topic, group, kafka_bootstrap):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"1", b"2"])
    seen: list[str] = []
    consumer = make_consumer(group, _collect(name, seen)(), config={"enable.auto.commit": False})()
    consumer.start()
    try:
        wait_until(lambda: consumer.run_once() or len(seen) >= 2, what="both messages")
        # committed while the consumer is still running, not only when it stops
        assert committed(kafka_bootstrap, group, name) == [2]
    finally:
        consumer.stop()


@pytest.mark.django_db(transaction=True)
def test_database_connections_are_recycled_once_a_poll_brings_nothing(
    create_topic, group, kafka_bootstrap, monkeypatch
):
    """django-kafka never called ``close_old_connections()``: a consumer kept its first
    connection for ever, past ``CONN_MAX_AGE`` (0 here) and after the server dropped it. Here a
    ``CONN_MAX_AGE = 0`` connection is closed after the first poll that brings nothing (while
    batches keep coming it stays open: tests/core/test_worker.py)."""
    from django.db import connection

    from django_messaging.core.worker import StopRequested, run_worker

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)  # Django's default
    connection.close()  # the next connection takes it
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"first"])
    stop = StopRequested()
    used: list[object] = []

    def consume(self, msg):
        value = msg.value().decode()
        Handled.objects.create(topic=name, value=value)
        used.append(connection.connection)
        if value == "first":
            # The next message comes after polls that bring nothing (each waits at most the
            # polling frequency, 1 s by default).
            later = threading.Timer(2.5, produce_raw, (kafka_bootstrap, name, [b"second"]))
            later.daemon = True
            later.start()
        else:
            stop.request()

    consumer = make_consumer(group, make_topic(TopicConsumer, name, consume=consume)())()
    assert consumer.get_polling_freq() <= 1.0
    run_worker(consumer, stop)
    assert len(used) == 2 and used[0] is not None and used[1] is not None
    assert used[0] is not used[1]
    assert sorted(Handled.objects.filter(topic=name).values_list("value", flat=True)) == [
        "first",
        "second",
    ]


def test_partition_eof_events_are_neither_logged_as_errors_nor_handled(
    create_topic, group, kafka_bootstrap, caplog
):
    """django-kafka logged every ``msg.error()`` at ERROR, ``_PARTITION_EOF`` included."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"1", b"2"])
    seen: list[str] = []
    consumer = make_consumer(group, _collect(name, seen)(), config={"enable.partition.eof": True})()
    eofs: list[object] = []

    class EofSpy:
        """The confluent consumer, noting the end-of-partition events it hands out."""

        def __init__(self, wrapped):
            self.wrapped = wrapped

        def __getattr__(self, attr):
            return getattr(self.wrapped, attr)

        def consume(self, *args, **kwargs):
            msgs = self.wrapped.consume(*args, **kwargs)
            eofs.extend(m for m in msgs if m.error() is not None)
            return msgs

    consumer._consumer = EofSpy(consumer._consumer)
    caplog.set_level(logging.ERROR, logger="django_messaging.kafka")
    run_until(consumer, lambda: len(seen) == 2 and eofs)
    assert seen == ["1", "2"]
    assert all(e.error().code() == KafkaError._PARTITION_EOF for e in eofs)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_overridden_get_topic_chooses_the_handler_of_each_message(
    create_topic, group, kafka_bootstrap
):
    """django-kafka's ``Consumer.consume`` hands each message to ``self.get_topic(msg)``: a
    subclass can route by header, key or anything else."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"a"], headers=[("kind", b"audit")])
    produce_raw(kafka_bootstrap, name, [b"b", b"c"])
    regular: list[str] = []
    audit: list[str] = []
    audit_topic = _collect(name, audit)()

    def get_topic(self, msg):
        if dict(msg.headers() or []).get("kind") == b"audit":
            return audit_topic
        return Consumer.get_topic(self, msg)

    consumer = make_consumer(group, _collect(name, regular)(), get_topic=get_topic)()
    run_until(consumer, lambda: len(regular) + len(audit) == 3)
    assert (audit, regular) == (["a"], ["b", "c"])


@pytest.mark.django_db(transaction=True)
def test_the_worker_loop_samples_the_consumers_throughput(create_topic, group, kafka_bootstrap):
    """The status samples behind the admin dashboard: written by ``run_worker`` between
    batches, the consumer's own count giving the throughput."""
    import threading

    from django.conf import settings as django_settings

    from django_messaging.core.models import StatusSample
    from django_messaging.core.worker import StopRequested, run_worker

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"%d" % i for i in range(10)])
    seen: list[bytes] = []
    consumer = make_consumer(
        group, make_topic(TopicConsumer, name, consume=lambda self, msg: seen.append(msg.value()))()
    )()
    stop = StopRequested()
    throughput = StatusSample.objects.filter(package=consumer.name, name="throughput", value__gt=0)

    def stop_once_sampled() -> None:
        try:
            wait_until(lambda: len(seen) == 10 and throughput.exists(), timeout=20)
        finally:
            stop.request()
            connection.close()  # this thread's

    status = {**django_settings.MESSAGING, "STATUS": {"SAMPLE_INTERVAL": 0.3}}
    with override_settings(MESSAGING=status):
        watcher = threading.Thread(target=stop_once_sampled)
        watcher.start()
        try:
            run_worker(consumer, stop)
        finally:
            stop.request()
            watcher.join()
    assert len(seen) == 10
    assert consumer.messages_handled() == 10
    rates = list(throughput.values_list("value", flat=True))
    assert rates and all(0 < rate <= 10 / 0.3 * 2 for rate in rates), rates
