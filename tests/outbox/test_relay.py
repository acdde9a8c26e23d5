"""The relay against RabbitMQ: order, persistence, receipts, retries, outages, claims."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import transaction
from django.db.models.signals import post_init
from django.test import override_settings
from django.utils import timezone

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.listeners import ProducerListener
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import Relay, claim_batch
from django_messaging.outbox.transports.stomp import StompTransport
from tests.helpers import skip_with_server_side_binding, wait_until
from tests.outbox.helpers import drive, outbox_settings, topic
from tests.project.outbox_app.models import PLAIN, PlainModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def sent_count() -> int:
    return Published.objects.filter(status=StatusChoice.SUCCEEDED).count()


def test_relay_sends_in_order_persistent_with_generated_headers(
    stomp_address, probe, unique_name
) -> None:
    destination, _ = topic(unique_name)
    p = probe(destination)
    rows = [
        Published.objects.create(destination=destination, body={"n": i, "at": timezone.now()})
        for i in range(30)
    ]
    relay = Relay(batch_size=7)
    relay.start()
    try:
        drive(relay, lambda: len(p.messages) >= 30 and sent_count() == 30, what="30 sent")
    finally:
        relay.stop()
    assert [json.loads(body)["n"] for _, body in p.messages] == list(range(30))
    headers = p.messages[0][0]
    assert headers["dop-msg-id"] == str(rows[0].id)
    assert headers["dop-msg-destination"] == destination
    assert headers["dop-msg-type"] == "Published"
    assert dt.datetime.fromisoformat(headers["dop-msg-sent-time"])
    assert headers["persistent"] == "true"
    assert headers["content-type"] == "application/json"
    row = Published.objects.get(id=rows[0].id)
    assert row.sent_at is not None and row.claimed_by is None and row.retry == 0


def test_decorated_save_and_manual_row_in_user_transaction_are_sent(
    stomp_address, probe, unique_name
) -> None:
    # The model's destination is this run's, shared by its tests: pick this test's message out
    # by a value only it writes.
    p = probe(PLAIN, unique_name("q"))
    destination, _ = topic(unique_name)
    p2 = probe(destination)
    marker = unique_name("one")

    def mine() -> list[dict]:
        bodies = [json.loads(body) for _, body in p.messages]
        return [b for b in bodies if b.get("field_one") == marker]

    with transaction.atomic():
        obj = PlainModel.objects.create(field_one=marker, field_two="Two")
        Published.objects.create(destination=destination, body={"some": "data"})
    relay = Relay()
    relay.start()
    try:
        drive(relay, lambda: mine() and p2.messages, what="both messages")
    finally:
        relay.stop()
    assert mine() == [{"id": obj.id, "field_one": marker, "field_two": "Two"}]
    assert json.loads(p2.messages[0][1]) == {"some": "data"}


def test_expired_rows_are_still_sent(stomp_address, probe, unique_name) -> None:
    """django-outbox-pattern 0.10.0+ (research E14): rows past ``expires_at`` were never sent."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    Published.objects.create(
        destination=destination,
        body={"old": True},
        expires_at=timezone.now() - dt.timedelta(days=3),
    )
    relay = Relay()
    relay.start()
    try:
        drive(relay, lambda: p.messages and sent_count() == 1, what="the expired row")
    finally:
        relay.stop()


def test_claims_are_disjoint_and_leased(unique_name) -> None:
    """Issue #44 of django-outbox-pattern: a second relay sent every row again."""
    for i in range(10):
        Published.objects.create(destination="/topic/claims", body={"i": i})
    first = claim_batch("relay-a", 6, 60)
    second = claim_batch("relay-b", 6, 60)
    assert len(first) == 6 and len(second) == 4
    assert not {r.id for r in first} & {r.id for r in second}
    assert claim_batch("relay-c", 6, 60) == []
    # a lease that ran out (its relay died) can be claimed again
    Published.objects.filter(claimed_by="relay-a").update(
        claimed_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert {r.id for r in claim_batch("relay-c", 10, 60)} == {r.id for r in first}


def test_claimed_rows_are_the_rows_from_db_builds_and_init_receivers_still_run() -> None:
    """A claimed row is what ``Published.from_db`` gives for the claim's columns (the others
    deferred), also when it is built without ``__init__``; with a ``post_init`` receiver on
    the model, the receiver runs for every claimed row."""
    stored = Published.objects.create(
        destination="/topic/loaded", body={"n": 1}, headers={"h": "v"}, key="k-1"
    )
    stored = Published.objects.get(id=stored.id)
    (row,) = claim_batch("relay-a", 10, 60)
    assert type(row) is Published and not row._state.adding and row._state.db == "default"
    assert (row.id, row.destination, row.body, row.headers, row.key, row.retry) == (
        stored.id,
        "/topic/loaded",
        {"n": 1},
        stored.headers,
        "k-1",
        0,
    )
    assert row.headers["h"] == "v"
    assert row.claimed_by == "relay-a" and row.transport == "default" and row.payload is None
    from django.db import connection

    if connection.vendor == "mysql":  # locked with SELECT ... FOR UPDATE: read whole
        assert row.get_deferred_fields() == set()
    else:
        assert row.get_deferred_fields() == {
            "added",
            "expires_at",
            "status",
            "available_at",
            "claimed_until",
            "sent_at",
            "last_error",
        }
    assert row.added == stored.added  # loaded when read
    assert row == stored and row.pk == stored.pk

    seen: list[object] = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.id)

    Published.objects.filter(id=stored.id).update(claimed_by=None, claimed_until=None)
    post_init.connect(receiver, sender=Published)
    try:
        (again,) = claim_batch("relay-b", 10, 60)
    finally:
        post_init.disconnect(receiver, sender=Published)
    assert seen == [stored.id] and again.claimed_by == "relay-b"


def test_broker_refusing_a_frame_reschedules_rows_then_marks_them_failed(
    stomp_address, probe, unique_name
) -> None:
    """Failed rows are retried (0.9.0 left them FAILED for good after one failed send loop);
    after DEFAULT_MAXIMUM_RETRY_ATTEMPTS they become FAILED and the admin can re-send them.

    The broker closes the connection after the refused frame, so the good message sent behind it
    on that connection may be routed without its receipt ever arriving: its row is then sent
    again (at least once), and only its receipt marks it sent.
    """
    destination, _ = topic(unique_name)
    p = probe(destination)
    bad = Published.objects.create(destination="/nonsense/destination", body={"bad": 1})
    good = Published.objects.create(destination=destination, body={"good": 1})

    def status(row: Published) -> int:
        return Published.objects.get(id=row.id).status

    with outbox_settings(DEFAULT_MAXIMUM_RETRY_ATTEMPTS=3):
        relay = Relay(batch_size=1)
        relay.start()
        try:
            drive(
                relay,
                lambda: (
                    status(bad) == StatusChoice.FAILED and status(good) == StatusChoice.SUCCEEDED
                ),
                what="bad row FAILED, good row confirmed",
            )
            wait_until(lambda: p.messages, what="the good message on the destination")
        finally:
            relay.stop()
    bad.refresh_from_db()
    assert bad.retry == 3 and bad.last_error
    assert all(json.loads(body) == {"good": 1} for _, body in p.messages)


def test_broker_outage_backs_off_and_resumes_without_losing_rows(proxy, probe, unique_name) -> None:
    destination, _ = topic(unique_name)
    p = probe(destination)
    with outbox_settings(DEFAULT_STOMP_HOST_AND_PORTS=[proxy.address]):
        relay = Relay(batch_size=5)
        relay.start()
        try:
            for i in range(10):
                Published.objects.create(destination=destination, body={"i": i})
            drive(relay, lambda: sent_count() == 10, what="first 10 sent")
            connections_before = proxy.connections
            assert connections_before == 1  # one connection reused across batches
            proxy.cut()
            for i in range(10, 30):
                Published.objects.create(destination=destination, body={"i": i})
            for _ in range(20):  # broker gone: nothing is marked sent
                relay.run_once()
            assert sent_count() <= 10 + 5
            proxy.restore()
            drive(relay, lambda: sent_count() == 30, timeout=30, what="all 30 sent")
        finally:
            relay.stop()
    wait_until(lambda: len(set(p.ids())) == 30, what="30 distinct messages on the broker")
    assert Published.objects.filter(status=StatusChoice.FAILED).count() == 0


def test_rows_are_marked_only_when_the_broker_confirmed(stomp_address, unique_name) -> None:
    """0.9.0 marked rows sent once written to the socket, without any broker confirmation.
    Here a row whose receipt never comes stays unsent and is retried."""
    destination, _ = topic(unique_name)
    row = Published.objects.create(destination=destination, body={"i": 1})
    confirmed: list = []

    class ReceiptsLost(StompTransport):
        """The broker's receipts never reach the relay (what a dropped RECEIPT looks like)."""

        def poll(self, timeout):
            result = super().poll(timeout)
            confirmed.extend(result.confirmed)
            result.confirmed = []
            return result

    with outbox_settings(DEFAULT_RECEIPT_TIMEOUT=0.5):
        relay = Relay(ReceiptsLost())
        relay.start()
        try:
            drive(relay, lambda: Published.objects.get(id=row.id).retry >= 1, what="a retry")
        finally:
            relay.stop()
    row.refresh_from_db()
    assert confirmed  # the broker did confirm; the relay just never saw it
    assert row.status == StatusChoice.SCHEDULE and row.sent_at is None
    assert "no receipt" in row.last_error and row.claimed_by is None


def test_database_error_does_not_stop_the_relay(stomp_address, probe, unique_name, monkeypatch):
    """A database outage is an error path PostgreSQL/SQLite cannot produce on demand here: the
    claim fails once, the relay logs it and goes on."""
    from django.db import OperationalError

    from django_messaging.outbox import relay as relay_module

    destination, _ = topic(unique_name)
    p = probe(destination)
    Published.objects.create(destination=destination, body={"n": 1})
    real = relay_module.claim_batch
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    monkeypatch.setattr(relay_module, "claim_batch", flaky)
    relay = Relay()
    relay.start()
    try:
        drive(relay, lambda: sent_count() == 1 and p.messages, what="sent after the error")
    finally:
        relay.stop()
    assert len(calls) >= 2


class IndentedJSON:
    """A serializer registered by name in MESSAGING["SERIALIZERS"]."""

    content_type = "application/json; charset=utf-8"

    def dumps(self, value):
        return json.dumps(value, indent=1, sort_keys=True).encode()

    def loads(self, data):
        return json.loads(data)


def test_body_serializer_is_resolved_by_name(stomp_address, probe, unique_name) -> None:
    from django.conf import settings

    destination, _ = topic(unique_name)
    p = probe(destination)
    Published.objects.create(destination=destination, body={"b": 2, "a": 1})
    messaging = {
        **settings.MESSAGING,
        "SERIALIZERS": {"indented": "tests.outbox.test_relay.IndentedJSON"},
        "OUTBOX": {**settings.MESSAGING["OUTBOX"], "DEFAULT_BODY_SERIALIZER": "indented"},
    }
    with override_settings(MESSAGING=messaging):
        relay = Relay()
        relay.start()
        try:
            drive(relay, lambda: p.messages, what="the message")
        finally:
            relay.stop()
    headers, body = p.messages[0]
    assert body == '{\n "a": 1,\n "b": 2\n}'
    assert headers["content-type"] == "application/json; charset=utf-8"


def test_coalesced_frames_keep_headers_and_bodies_intact(stomp_address, probe, unique_name):
    """SEND frames are written many to a socket write: escaped header values (``:``, newline,
    backslash), non-ASCII bodies (framed by their byte length) and bodies
    larger than one write chunk all arrive as they were stored."""
    from django_messaging.outbox.transports import stomp as stomp_transport

    destination, _ = topic(unique_name)
    p = probe(destination)
    big = "x" * (stomp_transport._FrameWriter.chunk_bytes + 10)
    bodies = [{"n": i, "text": "naïve – ünïcode ✓"} for i in range(200)]
    bodies.append({"n": 200, "big": big})
    headers = {"odd": "a:b\nc\\d", "plain": "v"}
    Published.objects.bulk_create(
        Published(destination=destination, body=body, headers=headers) for body in bodies
    )
    relay = Relay(batch_size=300)
    relay.start()
    try:
        drive(relay, lambda: len(p.messages) >= len(bodies), what="every message")
        assert isinstance(relay.transport, StompTransport)
        assert stomp_transport._FrameWriter.for_connection(relay.transport.connection) is not None
    finally:
        relay.stop()
    assert [json.loads(body) for _, body in p.messages] == bodies
    assert {h["odd"] for h, _ in p.messages} == {"a:b\nc\\d"}
    assert sent_count() == len(bodies)


class CountingListener(ProducerListener):
    """A producer listener class that watches outgoing frames."""

    sends: list[str] = []

    def on_send(self, frame) -> None:
        if frame.cmd == "SEND":
            CountingListener.sends.append(frame.headers["receipt"])


def test_listener_watching_outgoing_frames_sees_every_send(stomp_address, probe, unique_name):
    """With a listener class that has its own ``on_send``, frames go out one by one through
    stomp.py so the listener still sees each of them."""
    from django_messaging.outbox.transports import stomp as stomp_transport

    destination, _ = topic(unique_name)
    p = probe(destination)
    CountingListener.sends.clear()
    Published.objects.bulk_create(
        Published(destination=destination, body={"n": i}) for i in range(25)
    )
    with outbox_settings(
        DEFAULT_PRODUCER_LISTENER_CLASS="tests.outbox.test_relay.CountingListener"
    ):
        relay = Relay(batch_size=10)
        relay.start()
        try:
            drive(relay, lambda: len(p.messages) >= 25 and sent_count() == 25, what="25 sent")
            connection = relay.transport.connection
            assert stomp_transport._FrameWriter.for_connection(connection) is None
        finally:
            relay.stop()
    assert len(CountingListener.sends) == 25


def test_a_claim_marks_the_rows_it_is_handed_sent_in_its_transaction(unique_name) -> None:
    """``claim(sent=...)``: the relay records confirmations with its next claim. Only the
    claimer's own rows are marked; the claim then sees them sent."""
    destination, _ = topic(unique_name)
    rows = [Published.objects.create(destination=destination, body={"i": i}) for i in range(5)]
    mine = claim_batch("relay-a", 2, 60)
    theirs = claim_batch("relay-b", 1, 60)
    assert [r.id for r in mine] == [rows[0].id, rows[1].id] and theirs[0].id == rows[2].id

    rest = claim_batch("relay-a", 10, 60, sent=[rows[0].id, rows[1].id, rows[2].id])

    assert [r.id for r in rest] == [rows[3].id, rows[4].id]
    marked = {r.id: r for r in Published.objects.filter(status=StatusChoice.SUCCEEDED)}
    assert set(marked) == {rows[0].id, rows[1].id}  # not relay-b's row
    assert all(r.sent_at is not None and r.claimed_by is None for r in marked.values())
    assert Published.objects.get(id=rows[2].id).claimed_by == "relay-b"


class Counting:
    """A store's calls that write marks, around the real store."""

    def __init__(self, store, fail_once: bool = False):
        self.store = store
        self.calls: list[tuple[str, int]] = []
        self.fail_once = fail_once

    def __getattr__(self, name):
        return getattr(self.store, name)

    def mark_sent(self, owner, ids):
        self.calls.append(("mark_sent", len(ids)))
        self.store.mark_sent(owner, ids)

    def mark_sent_and_claim(self, owner, sent, size, lease):
        if self.fail_once and sent:
            self.fail_once = False
            from django.db import OperationalError

            raise OperationalError("server closed the connection unexpectedly")
        self.calls.append(("mark_sent_and_claim", len(sent)))
        return self.store.mark_sent_and_claim(owner, sent, size, lease)


def test_confirmations_are_recorded_with_the_next_claim(unique_name) -> None:
    """One transaction per batch: the confirmed rows of the batches before are marked by the
    next claim; a mark of its own only when no claim follows. Each row is sent once."""
    from django_messaging.core.relay import RelayPolicy
    from django_messaging.outbox.relay import PublishedStore
    from django_messaging.testing import MemoryTransport

    destination, _ = topic(unique_name)
    Published.objects.bulk_create(
        Published(destination=destination, body={"i": i}) for i in range(50)
    )
    store = Counting(PublishedStore())
    transport = MemoryTransport()
    relay = Relay(transport)
    relay.store = store
    relay.current_policy = lambda: RelayPolicy(batch_size=10, idle_wait=0.01)  # type: ignore[method-assign]
    relay.start()
    try:
        drive(relay, lambda: sent_count() == 50, what="every row marked sent")
    finally:
        relay.stop()
    assert relay.sent == 50 and len(transport.log) == 50
    folded = sum(n for call, n in store.calls if call == "mark_sent_and_claim")
    alone = [n for call, n in store.calls if call == "mark_sent"]
    assert folded + sum(alone) == 50
    assert folded >= 40, store.calls  # at most the last batch is marked on its own
    assert len(alone) <= 2, store.calls


def test_confirmations_wait_out_a_failed_claim_and_are_recorded_once(unique_name) -> None:
    """The claim that carries confirmations fails (the database went away): they stay
    confirmed, are never sent again, and the next claim records them."""
    from django_messaging.core.relay import RelayPolicy
    from django_messaging.outbox.relay import PublishedStore
    from django_messaging.testing import MemoryTransport

    destination, _ = topic(unique_name)
    Published.objects.bulk_create(
        Published(destination=destination, body={"i": i}) for i in range(20)
    )
    store = Counting(PublishedStore(), fail_once=True)
    transport = MemoryTransport()
    relay = Relay(transport)
    relay.store = store
    policy = RelayPolicy(batch_size=5, window=1, idle_wait=0.01)
    relay.current_policy = lambda: policy  # type: ignore[method-assign]
    relay.start()
    try:
        drive(relay, lambda: relay.database_failures == 1, what="the failed claim")
        assert relay._confirmed and sent_count() == 0
        drive(relay, lambda: sent_count() == 20, what="every row marked sent")
    finally:
        relay.stop()
    assert relay.sent == 20
    assert len(transport.log) == 20  # none sent twice


def test_a_claim_with_marks_is_one_statement_on_postgresql(unique_name) -> None:
    """The marks, the claims' advisory lock and the claim go to PostgreSQL as one query
    string: one round trip and one commit per batch."""
    from django.db import connection

    skip_with_server_side_binding()
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("one query string of several statements is PostgreSQL's")
    destination, _ = topic(unique_name)
    rows = [Published.objects.create(destination=destination, body={"i": i}) for i in range(4)]
    claim_batch("relay-a", 2, 60)
    with CaptureQueriesContext(connection) as queries:
        rest = claim_batch("relay-a", 10, 60, sent=[rows[0].id, rows[1].id])
    assert len(queries) == 1, [q["sql"][:80] for q in queries]
    assert [r.id for r in rest] == [rows[2].id, rows[3].id]
    assert sent_count() == 2


def _claim_plan(sent: list) -> str:
    """The plan of the claim statement that ``claim_batch`` sends, marking ``sent`` with it."""
    from django.db import connection

    seen: list[tuple[str, list]] = []

    def keep(execute, sql, params, many, context):
        if "claimed_until" in sql and "RETURNING" in sql:
            seen.append((sql, list(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        claim_batch("planner", 10, 30, sent=sent)
    ((sql, params),) = seen
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        # The relay's statements as it sends them (its planner settings first), the claim
        # explained instead of run.
        *before, claim = sql.split("; ")
        cursor.execute("; ".join([*before, f"EXPLAIN {claim}"]), params)
        while cursor.nextset():
            pass
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_claim_reads_unsent_rows_through_the_partial_indexes() -> None:
    """The relay's indexes hold unsent rows only; the claim statement repeats their condition
    so that SQLite uses them, and PostgreSQL proves it. Sent rows are found for retention
    through an index of their own."""
    from django.db import connection

    if connection.vendor == "mysql":
        pytest.skip("MySQL and MariaDB have no partial indexes")
    earlier = Published.objects.create(destination="/topic/plan", body={}, key="k")
    Published.objects.create(destination="/topic/plan", body={}, key="k")
    Published.objects.bulk_create(
        Published(destination="/topic/plan", body={"n": n}, key=f"k{n % 7}") for n in range(200)
    )
    (claimed, *_) = claim_batch("planner", 1, 30)
    assert claimed.id == earlier.id
    plan = _claim_plan([earlier.id])
    assert "msg_outbox_pub_unsent" in plan, plan
    assert "msg_outbox_pub_key_unsent" in plan, plan
    retention = Published.objects.sent_before(timezone.now()).values("id")
    assert "msg_outbox_pub_sent" in _plan(*retention.query.sql_with_params())

    from django.test.utils import CaptureQueriesContext

    from django_messaging.outbox.status import figures

    with CaptureQueriesContext(connection) as status:
        figures(5.0)
    assert len(status.captured_queries) == 2
    for query in status.captured_queries:
        assert "msg_outbox_pub_unsent" in _plan(query["sql"], ()), query["sql"]


def _plan(sql: str, params) -> str:
    """The plan of one query; on PostgreSQL without sequential scans, so that it shows whether
    the index can serve the query at all (a small test table is otherwise read whole)."""
    from django.db import connection

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())
