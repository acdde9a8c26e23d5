"""Idempotent topics: a redelivered message (the same outbox id header, or the same offset
again) is skipped, a failing handler records nothing, a ``kafka_consume`` process killed
between the database commit and the offset commit applies nothing twice; the purge command."""

from __future__ import annotations

import collections
import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from confluent_kafka import Consumer as RawConsumer
from confluent_kafka import TopicPartition
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from django_messaging.kafka import kafka
from django_messaging.kafka.consumer import Consumer
from django_messaging.kafka.models import ProcessedMessage
from django_messaging.kafka.topic import TopicConsumer
from tests.helpers import skip_with_server_side_binding, wait_until
from tests.kafka.conftest import committed, make_consumer, make_topic, produce_raw, run_until
from tests.kafka.test_batch_transaction import ROW_CONSUMER, row_env, rows  # noqa: F401
from tests.kafka.test_readme import my_app, python_blocks  # noqa: F401
from tests.kafka.test_worker import ROOT, lines, start, stop
from tests.project.kafka_app.models import Handled, Product

pytestmark = pytest.mark.django_db(transaction=True)


def writing_topic(name: str, **attrs):
    def consume(self, msg):
        Handled.objects.create(topic=msg.topic(), value=msg.value().decode())

    return make_topic(TopicConsumer, name, consume=consume, **{"idempotent": True, **attrs})


def reset_offsets(bootstrap: str, group: str, topic: str, offset: int = 0) -> None:
    raw = RawConsumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        raw.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        raw.close()


@pytest.mark.parametrize("overridden", [False, True], ids=["direct", "Consumer.consume"])
def test_messages_with_the_same_outbox_id_are_applied_once(
    create_topic, group, kafka_bootstrap, overridden
):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"a"], headers=[("dop-msg-id", b"id-1")])
    produce_raw(kafka_bootstrap, name, [b"a-again"], headers=[("dop-msg-id", b"id-1")])
    produce_raw(kafka_bootstrap, name, [b"b"], headers=[("dop-msg-id", b"id-2")])
    attrs = {"consume": lambda self, msg: Consumer.consume(self, msg)} if overridden else {}
    consumer = make_consumer(group, writing_topic(name)(), **attrs)()
    run_until(consumer, lambda: consumer.messages_handled() == 3)
    assert committed(kafka_bootstrap, group, name) == [3]  # the skipped one's offset too
    assert rows(name) == collections.Counter(["a", "b"])
    recorded = ProcessedMessage.objects.filter(consumer=group)
    assert sorted(recorded.values_list("message_id", flat=True)) == ["id-1", "id-2"]


def test_a_message_consumed_again_after_an_offset_reset_is_skipped(
    create_topic, group, kafka_bootstrap
):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"v0", b"v1", b"v2"])
    topic = writing_topic(name)
    run_until(make_consumer(group, topic())(), lambda: len(rows(name)) == 3)
    assert set(ProcessedMessage.objects.values_list("message_id", flat=True)) == {
        f"{name}/0/{offset}" for offset in range(3)
    }
    reset_offsets(kafka_bootstrap, group, name)
    produce_raw(kafka_bootstrap, name, [b"v3"])
    run_until(make_consumer(group, topic())(), lambda: "v3" in rows(name))
    assert rows(name) == collections.Counter(["v0", "v1", "v2", "v3"])
    assert committed(kafka_bootstrap, group, name) == [4]


def test_a_topic_that_is_not_idempotent_applies_a_redelivery_again(
    create_topic, group, kafka_bootstrap
):
    """The control of the test above."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"v0"])
    topic = writing_topic(name, idempotent=None)
    run_until(make_consumer(group, topic())(), lambda: len(rows(name)) == 1)
    reset_offsets(kafka_bootstrap, group, name)
    run_until(make_consumer(group, topic())(), lambda: rows(name)["v0"] == 2)
    assert not ProcessedMessage.objects.exists()


def test_a_failing_handler_records_nothing_so_the_retry_runs(create_topic, group, kafka_bootstrap):
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"ok-0", b"fail", b"ok-2"])
    calls = []

    def consume(self, msg):
        value = msg.value().decode()
        calls.append(value)
        Handled.objects.create(topic=msg.topic(), value=value)
        if value == "fail" and calls.count("fail") == 1:
            raise RuntimeError("failing once after a write")

    topic = make_topic(
        TopicConsumer, name, consume=consume, idempotent=True, atomic=False
    )  # idempotent makes it transactional all the same
    # a blocking retry: the partition pauses and the message is handed over again
    retrying = kafka.retry(max_retries=2, delay=0.1, blocking=True)(topic)
    run_until(make_consumer(group, retrying())(), lambda: "ok-2" in rows(name))
    assert calls == ["ok-0", "fail", "fail", "ok-2"]
    assert rows(name) == collections.Counter(["ok-0", "fail", "ok-2"])
    assert ProcessedMessage.objects.filter(consumer=group).count() == 3


def test_sigkill_after_the_database_commit_before_the_offset_commit_applies_once(
    row_env,  # noqa: F811
    kafka_bootstrap,
):
    topic, group, output, env = row_env
    env["KAFKA_APP_IDEMPOTENT"] = "1"
    env["KAFKA_APP_COMMIT_MS"] = "600000"  # offsets are committed at a rebalance or stop only
    values = [f"v{i}" for i in range(20)]
    produce_raw(kafka_bootstrap, topic, [v.encode() for v in values])
    proc = start(kafka_bootstrap, env, ROW_CONSUMER)
    try:
        wait_until(lambda: len(rows(topic)) == 20, timeout=30, what="the rows committed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert committed(kafka_bootstrap, group, topic) == [-1001]  # no offset committed
        assert len(lines(output)) == 20
        produce_raw(kafka_bootstrap, topic, [b"last"])
        proc = start(kafka_bootstrap, env, ROW_CONSUMER)
        wait_until(lambda: "last" in rows(topic), timeout=60, what="the message after them")
    finally:
        assert stop(proc) == 0, proc.stdout.read().decode()[-3000:]
    assert rows(topic) == collections.Counter([*values, "last"])
    assert len(lines(output)) == 21  # the redelivered messages did not reach the handler
    assert committed(kafka_bootstrap, group, topic) == [21]
    assert ProcessedMessage.objects.filter(consumer=group).count() == 21


def test_purge_deletes_the_ids_older_than_the_given_days():
    now = timezone.now()
    for group, message_id, days in [("g1", "old", 10), ("g1", "new", 1), ("g2", "old", 10)]:
        ProcessedMessage.objects.create(
            consumer=group, message_id=message_id, processed_at=now - timedelta(days=days)
        )
    call_command("kafka_inbox_purge", "--older-than", "5", "--group", "g2")
    assert ProcessedMessage.objects.count() == 2
    call_command("kafka_inbox_purge")  # INBOX_RETENTION_DAYS: 7
    assert list(ProcessedMessage.objects.values_list("consumer", "message_id")) == [("g1", "new")]
    call_command("kafka_inbox_purge", "--older-than", "0")
    assert not ProcessedMessage.objects.exists()


def test_purge_help_explains():
    done = subprocess.run(
        [sys.executable, "-m", "django", "kafka_inbox_purge", "--help"],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert b"--older-than DAYS" in done.stdout
    assert b"INBOX_RETENTION_DAYS" in done.stdout


def test_the_migrations_of_the_model_are_complete():
    out = io.StringIO()
    call_command("makemigrations", "messaging_kafka", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_the_readme_example_applies_a_resent_message_once(
    my_app,  # noqa: F811
    create_topic,
    group,
    kafka_bootstrap,
):
    block = next(b for b in python_blocks() if "class PricesRaised" in b)
    namespace: dict = {"__name__": "readme_inbox"}
    exec(compile(block, "README.md", "exec"), namespace)
    name = create_topic()
    topic = make_topic(namespace["PricesRaised"], name)
    Product.objects.create(id=7, name="p", price=10)
    for _ in range(2):  # the relay sent it twice (its confirmation was lost)
        produce_raw(kafka_bootstrap, name, [b"{}"], key=b"7", headers=[("dop-msg-id", b"m-7")])
    produce_raw(kafka_bootstrap, name, [b"{}"], key=b"7", headers=[("dop-msg-id", b"m-8")])
    consumer = make_consumer(group, topic())()
    run_until(consumer, lambda: consumer.messages_handled() == 3)
    assert Product.objects.get(id=7).price == 12


def test_on_postgresql_the_ids_of_a_batch_are_recorded_in_one_statement(
    create_topic, group, kafka_bootstrap, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("the statements are counted on PostgreSQL")
    skip_with_server_side_binding()
    from django.db.backends.postgresql.base import Cursor

    name = create_topic()
    produce_raw(kafka_bootstrap, name, [f"v{i}".encode() for i in range(20)])
    sent: list[str] = []
    real_execute = Cursor.execute

    def execute(self, query, params=None, **kw):
        sent.append(str(query))
        return real_execute(self, query, params, **kw)

    consumer = make_consumer(group, writing_topic(name)())()
    consumer.start()
    monkeypatch.setattr(Cursor, "execute", execute)
    deadline = time.monotonic() + 20
    while len(rows(name)) < 20 and time.monotonic() < deadline:
        consumer.run_once()
    monkeypatch.undo()
    consumer.stop()
    assert rows(name) == collections.Counter(f"v{i}" for i in range(20))
    assert ProcessedMessage.objects.filter(consumer=group).count() == 20
    records = [q for q in sent if "messaging_kafka_processedmessage" in q]
    assert 1 <= len(records) <= 5  # one per polled batch, not one per message
    assert all("RETURNING" in q and "SAVEPOINT" not in q for q in records)
    # per message: the handler's INSERT, in the round trip of the message's savepoint
    handler = [q for q in sent if "INSERT" in q and "messaging_kafka" not in q]
    assert len(handler) == 20 and all("SAVEPOINT" in q for q in handler)


def test_ids_recorded_ahead_follow_the_messages_that_failed_or_repeat_them(
    create_topic, group, kafka_bootstrap, read, caplog
):
    """In one batch: a failing message's id is free again for a later message with the same
    id, a repeated id is skipped, and only the handled messages' ids are kept."""
    name = create_topic()
    for value, msg_id in [
        (b"a", b"id-1"),
        (b"fail", b"id-2"),
        (b"b", b"id-3"),
        (b"again", b"id-2"),
        (b"a-repeated", b"id-1"),
        (b"c", b"id-4"),
    ]:
        produce_raw(kafka_bootstrap, name, [value], headers=[("dop-msg-id", msg_id)])
    calls = []

    def consume(self, msg):
        value = msg.value().decode()
        calls.append(value)
        Handled.objects.create(topic=msg.topic(), value=value)
        if value == "fail":
            raise ValueError("after a write")

    topic = make_topic(TopicConsumer, name, consume=consume, idempotent=True)
    consumer = make_consumer(group, topic(), batch_size=500)()
    run_until(consumer, lambda: "c" in rows(name) and read(f"{group}.{name}.dlt", 1, 0.2))
    assert calls == ["a", "fail", "b", "again", "c"]
    assert rows(name) == collections.Counter(["a", "b", "again", "c"])
    recorded = ProcessedMessage.objects.filter(consumer=group).values_list("message_id", flat=True)
    assert sorted(recorded) == ["id-1", "id-2", "id-3", "id-4"]
    assert committed(kafka_bootstrap, group, name) == [6]
    assert "one by one" not in caplog.text  # in the batch's transaction, not redone alone
