"""The default ``ATOMIC`` transaction of a batch, in process and in ``kafka_consume`` processes:
one commit per batch, a failing message loses only its own writes, a SIGKILL or a database
outage in the middle of a batch loses nothing and applies nothing twice."""

from __future__ import annotations

import collections
import os
import signal
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import DatabaseError, OperationalError, connection, transaction

from django_messaging.kafka.models import ProcessedMessage
from django_messaging.kafka.topic import TopicConsumer
from tests import services
from tests.helpers import skip_with_server_side_binding, wait_until
from tests.kafka.conftest import committed, make_consumer, make_topic, produce_raw, run_until
from tests.kafka.test_worker import lines, start, stop
from tests.project.kafka_app.models import Handled
from tests.proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)

ROW_CONSUMER = "tests.project.kafka_app.consumers.RowConsumer"


def rows(topic: str) -> collections.Counter[str]:
    return collections.Counter(Handled.objects.filter(topic=topic).values_list("value", flat=True))


def db_env() -> dict[str, str]:
    """Environment that makes a ``kafka_consume`` process use this test's database."""
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite":
        return {"MESSAGING_TEST_DB": "sqlite", "MESSAGING_SQLITE_PATH": name}
    return {"MESSAGING_TEST_DB": "postgres", "MESSAGING_TEST_DB_NAME": name}


@pytest.fixture
def row_env(create_topic, group, tmp_path):
    topic = create_topic()
    output = tmp_path / "handled.txt"
    env = {
        **db_env(),
        "KAFKA_APP_TOPIC_4": topic,
        "KAFKA_APP_GROUP_4": group,
        "KAFKA_APP_OUTPUT": str(output),
        "MESSAGING_LOG_LEVEL": "INFO",
    }
    return topic, group, output, env


# --- in process ---------------------------------------------------------------------------


def test_a_batch_of_writing_messages_is_committed_once(
    create_topic, group, kafka_bootstrap, monkeypatch
):
    """A transaction per message cost a commit (an fsync) per message."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [f"v{i}".encode() for i in range(100)])
    commits = []
    real_commit = connection.commit
    monkeypatch.setattr(connection, "commit", lambda: commits.append(1) or real_commit())

    def consume(self, msg):
        Handled.objects.create(topic=msg.topic(), value=msg.value().decode())

    topic = make_topic(TopicConsumer, name, consume=consume)
    run_until(make_consumer(group, topic())(), lambda: len(rows(name)) == 100)
    assert rows(name) == collections.Counter(f"v{i}" for i in range(100))
    assert 1 <= len(commits) <= 10  # a few polled batches, not 100 messages


def test_a_failing_message_in_a_batch_loses_only_its_own_writes(
    create_topic, group, kafka_bootstrap, read
):
    name = create_topic()
    values = [f"v{i}" for i in range(10)]
    values[5] = "fail"
    produce_raw(kafka_bootstrap, name, [v.encode() for v in values])

    def consume(self, msg):
        value = msg.value().decode()
        Handled.objects.create(topic=msg.topic(), value=value)
        Handled.objects.create(topic=msg.topic(), value=f"{value}-second")
        if value == "fail":
            raise ValueError("after two writes")

    topic = make_topic(TopicConsumer, name, consume=consume)
    consumer = make_consumer(group, topic())()
    run_until(consumer, lambda: read(f"{group}.{name}.dlt", 1, 0.2))
    kept = [v for v in values if v != "fail"]
    assert rows(name) == collections.Counter(kept + [f"{v}-second" for v in kept])


def test_a_message_failing_in_save_before_its_first_query_spoils_no_neighbour(
    create_topic, group, kafka_bootstrap, read
):
    """``Model.save()`` marks the transaction for rollback on any error, before it queried too
    (a ``pre_save`` receiver raising): the next message of the batch must still write."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"a", b"fail", b"b"])

    def consume(self, msg):
        value = msg.value().decode()
        if value == "fail":
            with transaction.mark_for_rollback_on_error():
                raise ValueError("before any query")
        Handled.objects.create(topic=msg.topic(), value=value)

    topic = make_topic(TopicConsumer, name, consume=consume)
    run_until(make_consumer(group, topic())(), lambda: len(rows(name)) == 2, timeout=15)
    assert rows(name) == collections.Counter(["a", "b"])
    assert [m.value() for m in read(f"{group}.{name}.dlt", 2, timeout=2)] == [b"fail"]


def test_atomic_blocks_of_handlers_in_a_batch_keep_their_meaning(
    create_topic, group, kafka_bootstrap, read
):
    """A handler's own ``atomic()`` blocks inside the message's savepoint: a block that failed
    undoes only itself, a message that failed after its block undoes the block too."""
    name = create_topic()
    produce_raw(kafka_bootstrap, name, [b"kept", b"inner-fails", b"fails-after", b"db-error", b"z"])

    def consume(self, msg):
        value = msg.value().decode()

        def row(suffix):
            Handled.objects.create(topic=msg.topic(), value=f"{value}-{suffix}")

        if value == "inner-fails":
            try:
                with transaction.atomic():
                    row("1")
                    raise KeyError("inner")
            except KeyError:
                pass
        elif value == "db-error":
            try:
                with transaction.atomic():
                    row("1")
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT * FROM no_such_table_here")
            except DatabaseError:
                pass
        else:
            with transaction.atomic(), transaction.atomic():
                row("1")
        row("2")
        if value == "fails-after":
            raise ValueError("after the block")

    topic = make_topic(TopicConsumer, name, consume=consume)
    run_until(make_consumer(group, topic())(), lambda: read(f"{group}.{name}.dlt", 1, 0.2))
    assert rows(name) == collections.Counter(
        ["kept-1", "kept-2", "inner-fails-2", "db-error-2", "z-1", "z-2"]
    )
    assert committed(kafka_bootstrap, group, name) == [5]


def _recording_batches(consumer_cls: type, sizes: list[int]) -> type:
    def process_batch(self, msgs, done=None):
        sizes.append(len(msgs))
        return consumer_cls.process_batch(self, msgs, done)

    return type("Recording", (consumer_cls,), {"process_batch": process_batch})


def test_a_batch_of_200_writing_messages_on_postgresql_keeps_64_subtransactions_a_transaction(
    create_topic, group, kafka_bootstrap, read
):
    """PostgreSQL caches the ids of 64 subtransactions per transaction; a transaction with more
    makes every other session's snapshots read them from disk. A savepoint that wrote stays
    until the commit, so a batch of 200 writing messages is committed in transactions of at most
    64 of them, and a failing message still loses only its own writes."""
    if connection.vendor != "postgresql":
        pytest.skip("the subtransaction cache is PostgreSQL's")
    name = create_topic()
    values = [f"v{i}" for i in range(200)]
    values[150] = "fail"
    produce_raw(kafka_bootstrap, name, [v.encode() for v in values])
    per_transaction: collections.Counter[int] = collections.Counter()

    def consume(self, msg):
        value = msg.value().decode()
        Handled.objects.create(topic=msg.topic(), value=value)
        if value == "fail":
            raise ValueError("after a write")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text")  # the top-level transaction
            per_transaction[int(cursor.fetchone()[0])] += 1

    for _ in range(70):  # Django numbers the savepoints of a connection from its first
        with transaction.atomic(), transaction.atomic():
            pass
    sizes: list[int] = []
    stored: list[int] = []

    def store(self, done):
        stored.append(done[(name, 0)] + 1)
        TestConsumer._store(self, done)

    topic = make_topic(TopicConsumer, name, consume=consume)
    TestConsumer = make_consumer(group, topic(), batch_size=500)
    consumer_cls = _recording_batches(TestConsumer, sizes)
    consumer_cls._store = store
    run_until(consumer_cls(), lambda: read(f"{group}.{name}.dlt", 1, 0.2), timeout=30)
    assert max(sizes) > 64  # a batch larger than the cache was handled
    assert sum(per_transaction.values()) == 199
    assert max(per_transaction.values()) == 64  # full transactions, none larger
    # each full transaction's offsets are stored after its commit, not at the end of the batch
    assert len(stored) > len(sizes) and stored == sorted(stored)
    kept = [v for v in values if v != "fail"]
    assert rows(name) == collections.Counter(kept)
    assert committed(kafka_bootstrap, group, name) == [200]


def test_a_batch_that_breaks_after_a_full_transaction_applies_nothing_twice(
    create_topic, group, kafka_bootstrap
):
    """The messages of a transaction committed because it was full are final: when a later
    transaction of the same batch breaks, only its own messages are handled again."""
    name = create_topic()
    values = [f"v{i}" for i in range(200)]
    produce_raw(kafka_bootstrap, name, [v.encode() for v in values])
    calls: collections.Counter[str] = collections.Counter()

    def consume(self, msg):
        value = msg.value().decode()
        calls[value] += 1
        Handled.objects.create(topic=msg.topic(), value=value)
        if value == "v100" and calls[value] == 1:
            raise OperationalError("the database went away")

    sizes: list[int] = []
    topic = make_topic(TopicConsumer, name, consume=consume)
    consumer_cls = _recording_batches(make_consumer(group, topic(), batch_size=500), sizes)
    run_until(consumer_cls(), lambda: sum(rows(name).values()) >= 200, timeout=30)
    assert max(sizes) > 100
    assert rows(name) == collections.Counter(values)
    if connection.vendor == "postgresql":  # transactions of 64: v0..v63 were not redone
        assert calls["v0"] == 1 and calls["v63"] == 1
        assert calls["v64"] == 2 and calls["v199"] == 1
    wait_until(lambda: committed(kafka_bootstrap, group, name) == [200], timeout=10)


def test_on_postgresql_a_writing_message_costs_one_round_trip(
    create_topic, group, kafka_bootstrap, monkeypatch, read
):
    """The message's savepoint (and the release of the previous one) travels with its first
    statement; a statement that fails there loses only its own message's writes, and a first
    statement that reads gets its own rows back."""
    skip_with_server_side_binding()
    if connection.vendor != "postgresql":
        pytest.skip("the statements are merged on PostgreSQL only")
    from django.db.backends.postgresql.base import Cursor

    name = create_topic()
    values = [f"v{i}" for i in range(12)]
    values[6] = "dup"  # its first statement violates the primary key
    produce_raw(kafka_bootstrap, name, [v.encode() for v in values])
    existing = Handled.objects.create(topic=name, value="before")
    seen: list[tuple[str, int]] = []

    def consume(self, msg):
        value = msg.value().decode()
        if value == "v3":  # a read first: its rows, not the savepoint's empty result
            seen.append(Handled.objects.filter(topic=name).values_list("value", "id")[0])
        if value == "dup":
            Handled.objects.create(id=existing.pk, topic=name, value="dup")
        Handled.objects.create(topic=name, value=value)

    sent: list[str] = []
    real_execute = Cursor.execute

    def execute(self, query, params=None, **kw):
        sent.append(str(query))
        return real_execute(self, query, params, **kw)

    topic = make_topic(TopicConsumer, name, consume=consume)
    monkeypatch.setattr(Cursor, "execute", execute)
    run_until(make_consumer(group, topic())(), lambda: read(f"{group}.{name}.dlt", 1, 0.2))
    monkeypatch.undo()
    assert rows(name) == collections.Counter(["before", *(v for v in values if v != "dup")])
    assert seen == [("before", existing.pk)]
    table = Handled._meta.db_table
    inserts = [q for q in sent if f'INSERT INTO "{table}"' in q]
    assert len(inserts) == 12  # one per message; the failing one's was rolled back
    merged = [q for q in inserts if "SAVEPOINT" in q]
    assert len(merged) == 11  # every message's first statement, but v3's, which was a read
    assert len([q for q in sent if "SAVEPOINT" in q and q.endswith("LIMIT 1")]) == 1
    alone = [q for q in sent if q.startswith(("SAVEPOINT", "RELEASE")) and "INSERT" not in q]
    assert alone == [s for s in sent if "LIMIT 1" in s]  # no round trip for a savepoint alone


# --- kafka_consume processes --------------------------------------------------------------


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_sigkill_in_the_middle_of_a_batch_loses_nothing_and_applies_nothing_twice(
    row_env, kafka_bootstrap, idempotent
):
    """An idempotent topic records the ids of a batch ahead: they are not committed either."""
    topic, group, output, env = row_env
    env["KAFKA_APP_SLOW"] = "0.01"
    if idempotent:
        env["KAFKA_APP_IDEMPOTENT"] = "1"
    values = [f"v{i}" for i in range(300)]
    produce_raw(kafka_bootstrap, topic, [v.encode() for v in values])
    proc = start(kafka_bootstrap, env, ROW_CONSUMER)
    try:
        wait_until(lambda: len(lines(output)) >= 20, timeout=30, what="the batch under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        handled = len(lines(output))
        assert handled < len(values)
        assert sum(rows(topic).values()) < handled  # the batch was cut before its commit
        proc = start(kafka_bootstrap, env, ROW_CONSUMER)
        wait_until(
            lambda: set(rows(topic)) == set(values), timeout=60, what="every row after a restart"
        )
    finally:
        assert stop(proc) == 0, proc.stdout.read().decode()[-3000:]
    assert rows(topic) == collections.Counter(values)
    if idempotent:
        assert ProcessedMessage.objects.filter(consumer=group).count() == len(values)


def test_a_failing_message_in_the_middle_of_a_batch_in_a_process(row_env, kafka_bootstrap, read):
    topic, group, output, env = row_env
    values = [f"v{i}" for i in range(40)]
    values[20] = "fail-20"
    produce_raw(kafka_bootstrap, topic, [v.encode() for v in values])
    proc = start(kafka_bootstrap, env, ROW_CONSUMER)
    try:
        kept = [v for v in values if v != "fail-20"]
        wait_until(lambda: set(rows(topic)) == set(kept), timeout=30, what="the other rows")
        dead = read(f"{group}.{topic}.dlt", 1)
        assert [m.value() for m in dead] == [b"fail-20"]
    finally:
        assert stop(proc) == 0, proc.stdout.read().decode()[-3000:]
    assert rows(topic) == collections.Counter(kept)
    assert len(lines(output)) == len(values)  # each handled once: nothing redone


def test_a_database_outage_in_the_middle_of_a_batch(row_env, kafka_bootstrap, read):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the outage is a cut of the connection to the server")
    topic, group, output, env = row_env
    parts = services.url_parts(services.POSTGRES_URL)
    proxy = TcpProxy((str(parts["host"]), int(parts["port"] or 5432))).start()
    url = urlsplit(services.POSTGRES_URL)
    netloc = url.netloc.rsplit("@", 1)[0] + "@" if "@" in url.netloc else ""
    env["MESSAGING_POSTGRES_URL"] = urlunsplit(
        url._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}")
    )
    env["KAFKA_APP_SLOW"] = "0.01"
    values = [f"v{i}" for i in range(300)]
    produce_raw(kafka_bootstrap, topic, [v.encode() for v in values])
    log = output.with_suffix(".log")
    proc = start(kafka_bootstrap, env, ROW_CONSUMER)
    try:
        wait_until(lambda: len(lines(output)) >= 20, timeout=30, what="the batch under way")
        proxy.cut()
        cut_at = len(lines(output))
        assert sum(rows(topic).values()) < cut_at  # the batch was not committed yet
        wait_until(
            lambda: b"database unreachable" in _drain(proc, log),
            timeout=30,
            what="the consumer to meet the outage",
        )
        proxy.restore()
        wait_until(
            lambda: set(rows(topic)) == set(values), timeout=60, what="every row after the outage"
        )
    finally:
        code = stop(proc)
        proxy.stop()
    output_text = _drain(proc, log).decode()
    assert code == 0, output_text[-3000:]
    assert "one by one" in output_text
    assert rows(topic) == collections.Counter(values)
    assert read(f"{group}.{topic}.dlt", 1, timeout=1) == []


def _drain(proc, log) -> bytes:
    """What the process printed so far (its pipe is read without blocking)."""
    os.set_blocking(proc.stdout.fileno(), False)
    chunk = proc.stdout.read()
    if chunk:
        with log.open("ab") as fh:
            fh.write(chunk)
    return log.read_bytes() if log.exists() else b""
