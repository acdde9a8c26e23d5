"""The core relay over a store written against its protocol (tests/core/relay_store.py), the
real database and RabbitMQ through the STOMP transport: confirmations, back-off, database
outages, leases of killed relays, per-key ordering."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Hashable, Iterator, Sequence

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_messaging.core.reconnect import Backoff
from django_messaging.core.relay import Relay, RelayPolicy, one_transaction
from django_messaging.core.transports import Confirmations, OutgoingMessage
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import PublishedStore
from django_messaging.outbox.transports.stomp import StompTransport
from tests.core.relay_store import KeyedStore
from tests.helpers import catches_signal, wait_until
from tests.outbox.conftest import ROOT, Output, database_proxy, probe, proxy, through  # noqa: F401
from tests.outbox.helpers import drive, topic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def sent() -> int:
    return Published.objects.filter(status=StatusChoice.SUCCEEDED).count()


def make_rows(destination: str, count: int, key: str | None = None) -> list[Published]:
    headers = {} if key is None else {"key": key}
    return Published.objects.bulk_create(
        Published(destination=destination, body={"i": i}, headers=headers) for i in range(count)
    )


def test_confirmed_rows_are_marked_sent(stomp_address, probe, unique_name) -> None:  # noqa: F811
    destination, _ = topic(unique_name)
    p = probe(destination)
    rows = make_rows(destination, 25)
    relay = Relay(KeyedStore(), StompTransport(), RelayPolicy(batch_size=7, idle_wait=0.05))
    relay.start()
    try:
        drive(relay, lambda: sent() == 25 and len(p.messages) >= 25, what="25 confirmed")
    finally:
        relay.stop()
    assert [json.loads(body)["i"] for _, body in p.messages] == list(range(25))
    assert p.ids() == [str(r.id) for r in rows]
    assert relay.sent == 25
    row = Published.objects.get(id=rows[0].id)
    assert row.sent_at is not None and row.claimed_by is None and row.retry == 0


class ReceiptsLost(StompTransport):
    """The broker's receipts never reach the relay (a dropped RECEIPT)."""

    def poll(self, timeout: float) -> Confirmations:
        result = super().poll(timeout)
        result.confirmed = []
        return result


def test_unconfirmed_rows_are_rescheduled_with_backoff_then_given_up(
    stomp_address, unique_name
) -> None:
    destination, _ = topic(unique_name)
    (row,) = make_rows(destination, 1)
    backoff = Backoff(initial=20, cap=60)
    policy = RelayPolicy(receipt_timeout=0.5, idle_wait=0.05, retry=backoff.delay, max_attempts=3)
    relay = Relay(KeyedStore(), ReceiptsLost(), policy)
    relay.start()
    try:
        for attempt in (1, 2):
            before = timezone.now()
            drive(
                relay,
                lambda n=attempt: Published.objects.get(id=row.id).retry == n,
                what="a retry",
            )
            row.refresh_from_db()
            # Backoff.delay(n) is between half the nominal wait and all of it.
            wait = (row.available_at - before).total_seconds()
            nominal = backoff.nominal(attempt)
            assert nominal / 2 - 1 <= wait <= nominal + 1, (attempt, wait)
            assert row.status == StatusChoice.SCHEDULE and row.claimed_by is None
            assert "no receipt within 0.5s" in row.last_error
            Published.objects.filter(id=row.id).update(available_at=timezone.now())
        drive(
            relay,
            lambda: Published.objects.get(id=row.id).status == StatusChoice.FAILED,
            what="given up after max_attempts",
        )
    finally:
        relay.stop()
    row.refresh_from_db()
    assert row.retry == 3 and row.sent_at is None


@pytest.fixture
def relay_processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def start_relay(
    started: list[subprocess.Popen[str]], batch_size: int, lease: float, env: dict[str, str]
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.core.relay_script", str(batch_size), str(lease)],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.outbox.subprocess_settings",
            "MESSAGING_LOG_LEVEL": "INFO",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(proc)
    return proc


def test_confirmations_are_kept_through_a_database_outage(
    stomp_address,
    probe,  # noqa: F811
    unique_name,
    database_proxy,  # noqa: F811
    proxy,  # noqa: F811
    relay_processes,
) -> None:
    """Receipts that arrive while the database is down are recorded once it is back: no row is
    sent twice and none waits for the receipt timeout."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    env = {**through(database_proxy), "MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{proxy.port}"}
    relay = start_relay(relay_processes, 500, 10, env)
    output = Output(relay)
    make_rows(destination, 1)
    wait_until(lambda: sent() == 1, timeout=30, what="the relay running")

    total = 200
    proxy.hold()
    make_rows(destination, total)
    wait_until(
        lambda: Published.objects.filter(claimed_by__isnull=False).count() == total,
        what="the batch claimed and sent",
    )
    database_proxy.cut()
    proxy.release()  # the receipts arrive while the database is down
    wait_until(
        lambda: output.text.count("database error (unreachable") >= 2,
        timeout=30,
        what="the relay to meet the outage",
    )
    database_proxy.restore()
    wait_until(lambda: sent() == total + 1, timeout=30, what="every row marked sent")
    wait_until(lambda: len(p.messages) >= total + 1, what="every message on the broker")
    ids = p.ids()
    assert len(ids) == len(set(ids)) == total + 1, f"{len(ids) - len(set(ids))} duplicates"
    assert "no receipt within" not in output.text
    wait_until(lambda: catches_signal(relay.pid, signal.SIGTERM), what="relay running")
    relay.send_signal(signal.SIGTERM)
    assert relay.wait(30) == 0, output.text[-2000:]


def test_a_killed_relays_rows_are_taken_over_when_its_lease_ends(
    stomp_address,
    probe,  # noqa: F811
    unique_name,
    proxy,  # noqa: F811
    relay_processes,
) -> None:
    """A relay killed while holding rows stops renewing their lease: another relay claims them
    once it ends, not before."""

    destination, _ = topic(unique_name)
    p = probe(destination)
    lease = 3.0
    first = start_relay(
        relay_processes, 50, lease, {"MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{proxy.port}"}
    )
    make_rows(destination, 1)
    wait_until(lambda: sent() == 1, timeout=30, what="the first relay running")
    proxy.hold()  # no receipts: the relay fills its window and renews its leases
    make_rows(destination, 300)
    wait_until(
        lambda: Published.objects.filter(claimed_by__isnull=False).count() == 100,
        what="two batches claimed and in flight",
    )
    held = Published.objects.filter(claimed_by__isnull=False)
    first_until = max(held.values_list("claimed_until", flat=True))
    wait_until(
        lambda: (
            min(held.values_list("claimed_until", flat=True), default=first_until) > first_until
        ),
        what="the live relay renewing every lease",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed = timezone.now()
    leased_until = dict(held.values_list("id", "claimed_until"))
    assert len(leased_until) == 100
    proxy.release()

    claimed_at: dict[Hashable, dt.datetime] = {}

    class Recording(KeyedStore):
        def claim(self, owner: str, size: int, lease: float) -> list[Published]:
            now = timezone.now()
            rows = super().claim(owner, size, lease)
            claimed_at.update((row.id, now) for row in rows)
            return rows

    second = Relay(
        Recording(), StompTransport(), RelayPolicy(batch_size=500, lease=lease, idle_wait=0.05)
    )
    second.start()
    try:
        drive(second, lambda: sent() == 301, timeout=30, what="every row, the killed relay's too")
        took = (timezone.now() - killed).total_seconds()
    finally:
        second.stop()
    early = [i for i, until in leased_until.items() if claimed_at[i] < until]
    assert not early, f"{len(early)} rows claimed while the killed relay's lease still ran"
    assert took < lease + 10, took
    wait_until(lambda: len(set(p.ids())) == 301, what="every message on the broker")


class SwallowsFirst(StompTransport):
    """Writes nothing of the first message sent for ``key`` (lost on the way), so it is never
    confirmed; records what is in flight per ordering key."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.swallowed: list[Hashable] = []
        self.most_in_flight: dict[str, int] = {}
        self._in_flight: dict[Hashable, str] = {}

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        kept = []
        for message in messages:
            if message.ordering_key == self.key and not self.swallowed:
                self.swallowed.append(message.key)
                continue
            kept.append(message)
            if message.ordering_key is not None:
                self._in_flight[message.key] = message.ordering_key
        counts: dict[str, int] = {}
        for key in self._in_flight.values():
            counts[key] = counts.get(key, 0) + 1
        for key, count in counts.items():
            self.most_in_flight[key] = max(self.most_in_flight.get(key, 0), count)
        return super().send(kept)

    def poll(self, timeout: float) -> Confirmations:
        result = super().poll(timeout)
        for key in result.confirmed:
            self._in_flight.pop(key, None)
        if result.lost:
            self._in_flight.clear()
        return result

    def close(self) -> None:
        self._in_flight.clear()
        super().close()


def test_rows_of_one_key_are_sent_in_order_one_at_a_time(
    stomp_address,
    probe,  # noqa: F811
    unique_name,
) -> None:
    """The first row of key "a" is lost on the way: the rows behind it wait and go after it,
    while key "b" flows."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    rows: list[Published] = []
    for _ in range(6):
        rows += make_rows(destination, 1, key="a") + make_rows(destination, 1, key="b")
    transport = SwallowsFirst("a")
    policy = RelayPolicy(batch_size=20, receipt_timeout=1.0, idle_wait=0.05, retry=lambda n: 1.0)
    relay = Relay(KeyedStore(ordered=True), transport, policy)
    relay.start()
    try:
        drive(relay, lambda: sent() == 12 and len(p.messages) >= 12, what="every row sent")
    finally:
        relay.stop()
    order = {str(r.id): (r.headers["key"], n) for n, r in enumerate(rows)}
    arrived = [order[i] for i in p.ids()]
    for key in ("a", "b"):
        positions = [n for k, n in arrived if k == key]
        assert positions == sorted(positions), (key, arrived)
    assert transport.swallowed == [rows[0].id]
    assert transport.most_in_flight == {"a": 1, "b": 1}
    assert Published.objects.get(id=rows[0].id).retry == 1


def test_retention_purges_rows_sent_before_it_and_nothing_unsent(
    stomp_address,
    probe,  # noqa: F811
    unique_name,
) -> None:
    destination, _ = topic(unique_name)
    p = probe(destination)
    old = make_rows(destination, 5)
    policy = RelayPolicy(idle_wait=0.05, retention=3600.0, purge_every=0.0)
    relay = Relay(KeyedStore(), StompTransport(), policy)
    relay.start()
    try:
        drive(relay, lambda: sent() == 5 and len(p.messages) >= 5, what="5 sent")
        Published.objects.filter(id__in=[r.id for r in old]).update(
            sent_at=timezone.now() - dt.timedelta(hours=2)
        )
        recent = make_rows(destination, 3)
        waiting = make_rows(destination, 2)
        Published.objects.filter(id__in=[r.id for r in waiting]).update(
            available_at=timezone.now() + dt.timedelta(hours=1)
        )
        drive(
            relay,
            lambda: not Published.objects.filter(id__in=[r.id for r in old]).exists(),
            what="the rows sent two hours ago purged",
        )
    finally:
        relay.stop()
    assert set(Published.objects.values_list("id", flat=True)) == {r.id for r in recent + waiting}


def test_renewals_hold_only_the_rows_the_relay_tracks(
    stomp_address,
    proxy,  # noqa: F811
    unique_name,
):
    """A row leased to the relay that it no longer tracks (its statement failed half-way) is
    not renewed with the others: its lease ends, so it can be claimed and sent again."""
    from django.conf import settings
    from django.test import override_settings

    destination, _ = topic(unique_name)
    outbox = {
        **settings.MESSAGING["OUTBOX"],
        "DEFAULT_STOMP_HEARTBEATS": (0, 0),  # the held connection must not time out
        "DEFAULT_STOMP_HOST_AND_PORTS": [proxy.address],
    }
    lease = 1.5
    policy = RelayPolicy(batch_size=10, lease=lease, receipt_timeout=60, idle_wait=0.05)
    with override_settings(MESSAGING={**settings.MESSAGING, "OUTBOX": outbox}):
        store = KeyedStore()
        relay = Relay(store, StompTransport(), policy)
        relay.start()
        try:
            relay.run_once()  # connects
            proxy.hold()
            make_rows(destination, 10)
            drive(relay, lambda: len(relay._inflight) == 10, what="10 in flight")
            (lost,) = make_rows(destination, 1)
            assert [r.id for r in store.claim(relay.owner, 1, lease)] == [lost.id]
            lost_until = Published.objects.get(id=lost.id).claimed_until
            tracked = Published.objects.exclude(id=lost.id)
            drive(
                relay,
                lambda: (
                    min(tracked.values_list("claimed_until", flat=True))
                    > lost_until + dt.timedelta(seconds=1)
                ),
                what="the tracked rows renewed past the untracked row's lease",
            )
            assert Published.objects.get(id=lost.id).claimed_until == lost_until
            proxy.release()
            drive(relay, lambda: sent() == 11, what="every row")
        finally:
            proxy.release()
            relay.stop()


class CountsRenewals(KeyedStore):
    def __init__(self) -> None:
        super().__init__()
        self.renewals: list[int] = []

    def renew(self, owner: str, ids: Sequence[Hashable], lease: float) -> int:
        self.renewals.append(len(ids))
        return super().renew(owner, ids, lease)


def test_leases_are_renewed_a_third_of_the_lease_after_the_claim_not_at_once(
    stomp_address,
    unique_name,
) -> None:
    """Rows just claimed have a fresh lease: confirmed within a third of it, they are never
    renewed (one statement less per burst); held longer, they are (test above)."""
    destination, _ = topic(unique_name)
    make_rows(destination, 30)
    store = CountsRenewals()
    policy = RelayPolicy(batch_size=10, lease=60, idle_wait=0.05)
    relay = Relay(store, StompTransport(), policy)
    relay.start()
    try:
        drive(relay, lambda: sent() == 30, what="30 confirmed")
    finally:
        relay.stop()
    assert store.renewals == []


def _setting(using: str, name: str, *, by_index: bool) -> str:
    rows = one_transaction(using, [("SELECT current_setting(%s)", [name])], by_index=by_index)
    return str(rows[0][0])


def test_one_transaction_by_index_reads_through_indexes_for_its_own_statements_only(
    pg_binding: None,
) -> None:
    """``by_index``: the statements of that transaction are planned without sequential and
    bitmap scans (a backlog before the table's first ANALYZE); the session and a caller's
    transaction keep their settings. With server-side binding too, where the statements go one
    by one."""
    using = connection.alias
    assert _setting(using, "enable_seqscan", by_index=True) == "off"
    assert _setting(using, "enable_bitmapscan", by_index=True) == "off"
    assert _setting(using, "enable_seqscan", by_index=False) == "on"  # ended with it
    with transaction.atomic():
        assert _setting(using, "enable_seqscan", by_index=True) == "on"  # a caller's: untouched
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_bitmapscan')")
            assert cursor.fetchone()[0] == "on"


class HeldClaims(PublishedStore):
    """The outbox's store, whose claims (run on the relay's database thread) can be held
    between their statement and their return, to let the relay go on meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.go_on = threading.Event()
        self.go_on.set()
        self.claimed = threading.Event()

    def claim(self, owner: str, size: int, lease: float) -> list[Published]:
        return self._held(super().claim(owner, size, lease))

    def mark_sent_and_claim(
        self, owner: str, sent: Sequence[Hashable], size: int, lease: float
    ) -> list[Published]:
        return self._held(super().mark_sent_and_claim(owner, sent, size, lease))

    def _held(self, rows: list[Published]) -> list[Published]:
        self.claimed.set()
        assert self.go_on.wait(30)
        return rows


class RefusesFirst(StompTransport):
    """Writes nothing of the first message sent, and reports it refused by the broker once
    ``refuse`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = threading.Event()
        self.refused: list[Hashable] = []
        self._to_refuse: list[Hashable] = []

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        messages = list(messages)
        if not self.refused:
            self.refused.append(messages[0].key)
            self._to_refuse.append(messages.pop(0).key)
        return super().send(messages)

    def poll(self, timeout: float) -> Confirmations:
        result = super().poll(timeout)
        if self._to_refuse and self.refuse.is_set():
            result.rejected, self._to_refuse = [*result.rejected, *self._to_refuse], []
            result.error = "refused on purpose"
        return result


@pytest.mark.skipif(connection.vendor != "postgresql", reason="claims ahead on PostgreSQL only")
def test_a_claim_ahead_that_saw_a_refused_row_still_held_does_not_send_the_rows_behind_it(
    stomp_address,
    probe,  # noqa: F811
    unique_name,
) -> None:
    """The next batch is claimed on the database thread while the relay sends. A claim that
    read the table while row A of key k was in flight returns B, the row behind it; if the
    broker refuses A before that claim comes back, B goes back to the table, and is sent after
    A's retry."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    a, b = (
        Published.objects.create(destination=destination, body={"n": n}, key="k") for n in (1, 2)
    )
    store = HeldClaims()
    transport = RefusesFirst()
    policy = RelayPolicy(batch_size=1, window=2, idle_wait=0.05, retry=lambda n: 0.5)
    relay = Relay(store, transport, policy)
    relay.start()
    try:
        drive(relay, lambda: relay._ahead is not None, what="the first claim")
        store.go_on.clear()  # claims from now on wait after their statement
        store.claimed.clear()
        drive(relay, lambda: transport.refused, what="A sent (and lost)")
        assert store.claimed.wait(10)  # the claim ahead read B as claimable, A still held
        assert transport.refused == [a.id]
        transport.refuse.set()
        drive(relay, lambda: Published.objects.get(id=a.id).retry == 1, what="A rescheduled")
        store.go_on.set()
        drive(relay, lambda: sent() == 2 and len(p.messages) >= 2, what="both sent")
    finally:
        store.go_on.set()
        relay.stop()
    assert p.ids() == [str(a.id), str(b.id)]
