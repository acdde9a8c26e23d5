"""Stored master messages sent by the core relay (``cqrs_pending run``): leases, confirms and the
order of each instance's messages, against the real database and RabbitMQ."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import pytest
from django.utils import timezone

from django_messaging.core.relay import RelayPolicy
from django_messaging.core.transports import Confirmations
from django_messaging.cqrs.dataclasses import TransportPayload
from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.relay import PendingRelay, PendingStore
from django_messaging.cqrs.transport.confirming import PikaTransport
from tests.cqrs.conftest import ROOT, db_env, messages
from tests.helpers import catches_signal, wait_until
from tests.outbox.helpers import drive
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def store_rows(count: int, instances: int | None = None) -> list[PendingMessage]:
    """``count`` stored SAVEs of products named ``v<n>``, over ``instances`` products (one each
    when ``None``), as a failed publish leaves them."""
    rows = []
    for n in range(count):
        pk = n % instances if instances else n
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
    return PendingMessage.objects.bulk_create(rows)


def names(bodies: list[dict]) -> list[str]:
    return [body["instance_data"]["name"] for body in bodies]


class Relay(PendingRelay):
    """The relay with a policy the test chooses (the package reads it from the settings)."""

    def __init__(self, transport: Any = None, **policy: Any) -> None:
        super().__init__(transport=transport, interval=0.05)
        self.overrides = policy

    def current_policy(self) -> RelayPolicy:
        return dataclasses.replace(super().current_policy(), **self.overrides)


class ConfirmsLost(PikaTransport):
    """The broker's confirms never reach the relay."""

    def poll(self, timeout: float) -> Confirmations:
        polled = super().poll(timeout)
        polled.confirmed = []
        return polled


def test_a_row_is_deleted_only_once_the_broker_confirmed_it(broker, cqrs_settings) -> None:
    (row,) = store_rows(1)
    relay = Relay(ConfirmsLost(), receipt_timeout=0.5, retry=lambda n: 30.0)
    relay.start()
    try:
        drive(relay, lambda: PendingMessage.objects.get().attempts == 2, what="a failed attempt")
    finally:
        relay.stop()
    row.refresh_from_db()
    assert "no receipt within 0.5s" in row.last_error
    assert row.claimed_by is None and row.available_at > timezone.now() + dt.timedelta(seconds=20)
    assert names(messages(broker, cqrs_settings["queue"])) == ["v0"]  # sent, not confirmed

    PendingMessage.objects.update(available_at=None)
    store_rows(5)
    relay = Relay()
    relay.start()
    try:
        drive(relay, lambda: not PendingMessage.objects.exists(), what="every row confirmed")
    finally:
        relay.stop()
    assert relay.sent == 6
    # The unconfirmed row again; the new row of its instance (the new "v0") waits for its
    # confirm, the rows of other instances do not.
    expected = ["v0", "v1", "v2", "v3", "v4", "v0"]
    assert names(messages(broker, cqrs_settings["queue"])) == expected


def test_a_refused_row_is_retried_and_the_rows_behind_it_wait(broker, cqrs_settings) -> None:
    """A nack keeps the connection; the instance's next message is not sent ahead of it."""
    full = cqrs_settings["queue"] + "-full"
    broker.queue_declare(queue=full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    broker.queue_bind(queue=full, exchange=cqrs_settings["exchange"], routing_key="product")
    store_rows(3, instances=1)
    relay = Relay(retry=lambda n: 0.2)
    relay.start()
    try:
        drive(relay, lambda: PendingMessage.objects.filter(attempts=2).exists(), what="a nack")
        assert "nack" in PendingMessage.objects.get(attempts=2).last_error
        assert PendingMessage.objects.count() == 3
        broker.queue_delete(queue=full)
        drive(relay, lambda: not PendingMessage.objects.exists(), what="every row confirmed")
    finally:
        relay.stop()
    sent = names(messages(broker, cqrs_settings["queue"]))
    # v0 once per attempt (the replica queue took it while the other refused it), then in order.
    tries = sent.count("v0")
    assert tries >= 2 and sent == ["v0"] * tries + ["v1", "v2"], sent


@pytest.fixture
def amqp_proxy(rabbitmq_url) -> Iterator[TcpProxy]:
    from tests import services

    proxy = TcpProxy(services.host_port(rabbitmq_url, 5672)).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def relays(cqrs_settings, tmp_path) -> Iterator[Any]:
    """``start(proxy, **master)``: a ``cqrs_pending run`` process on this test's database and
    exchange, with these master settings, its output in ``proc.log``; stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(proxy: TcpProxy | None = None, **master: Any) -> subprocess.Popen[bytes]:
        log = tmp_path / f"relay-{len(started)}.log"
        env = {
            **os.environ,
            **db_env(),
            "PYTHONPATH": str(ROOT),
            "MESSAGING_CQRS_EXCHANGE": cqrs_settings["exchange"],
            "MESSAGING_CQRS_QUEUE": cqrs_settings["queue"],
            "MESSAGING_CQRS_MASTER": json.dumps(master),
            "MESSAGING_LOG_LEVEL": "INFO",
        }
        if proxy is not None:
            env["MESSAGING_RABBITMQ_URL"] = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
        command = ["cqrs_pending", "run", "--interval", "0.05"]
        with log.open("ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "django", *command, "--settings", "tests.project.settings"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc.log = log  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def connected(proc: subprocess.Popen[bytes]) -> bool:
    return "connected to the broker" in proc.log.read_text()  # type: ignore[attr-defined]


def owners() -> set[str]:
    return set(
        PendingMessage.objects.filter(claimed_by__isnull=False).values_list("claimed_by", flat=True)
    )


def test_two_live_relays_never_send_a_row_twice(broker, cqrs_settings, amqp_proxy, relays):
    """Their confirms held back, both relays fill their window with rows of their own lease;
    once the confirms arrive every row has been sent exactly once, each product's two messages
    in order."""
    first = relays(amqp_proxy, CQRS_PENDING_FLUSH_BATCH=20)
    second = relays(amqp_proxy, CQRS_PENDING_FLUSH_BATCH=20)
    wait_until(lambda: connected(first) and connected(second), timeout=30, what="connections")
    amqp_proxy.hold()
    store_rows(200, instances=100)  # v0..v99, then v100..v199 of the same products
    wait_until(
        lambda: PendingMessage.objects.filter(claimed_by__isnull=False).count() == 80,
        timeout=30,
        what="two windows of two batches claimed",
    )
    assert len(owners()) == 2
    amqp_proxy.release()
    wait_until(lambda: not PendingMessage.objects.exists(), timeout=30, what="every row sent")
    sent = names(messages(broker, cqrs_settings["queue"]))
    assert sorted(sent) == sorted(f"v{n}" for n in range(200)), f"{len(sent)} messages"
    late = [n for n in range(100) if sent.index(f"v{n + 100}") < sent.index(f"v{n}")]
    assert not late, f"{len(late)} products' second message went first"
    for proc in (first, second):
        wait_until(lambda p=proc: catches_signal(p.pid, signal.SIGTERM), what="relay running")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_killed_relays_rows_are_taken_over_when_its_lease_ends(
    broker, cqrs_settings, amqp_proxy, relays
):
    """A relay killed while holding rows stops renewing its lease: another relay claims them
    once it ends, not before, and sends them again (the first one's were never confirmed)."""
    lease = 2.0
    first = relays(amqp_proxy, CQRS_PENDING_FLUSH_BATCH=50, RELAY_CLAIM_TIMEOUT=lease)
    wait_until(lambda: connected(first), timeout=30, what="the relay's connection")
    amqp_proxy.hold()  # no confirms: the relay fills its window and renews its leases
    store_rows(100)
    held = PendingMessage.objects.filter(claimed_by__isnull=False)
    wait_until(lambda: held.count() == 100, timeout=30, what="two batches claimed and in flight")
    first_until = max(held.values_list("claimed_until", flat=True))
    wait_until(
        lambda: min(held.values_list("claimed_until", flat=True)) > first_until,
        what="the live relay renewing every lease",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    leased_until = dict(held.values_list("id", "claimed_until"))
    killed = timezone.now()
    amqp_proxy.release()

    claimed_at: dict[Hashable, dt.datetime] = {}

    class Recording(PendingStore):
        def mark_sent_and_claim(
            self, owner: str, sent: Sequence[Hashable], size: int, lease: float
        ) -> list[PendingMessage]:  # every claim comes here
            now = timezone.now()
            rows = super().mark_sent_and_claim(owner, sent, size, lease)
            claimed_at.update((row.pk, now) for row in rows)
            return rows

    second = Relay(lease=lease)
    second.store = second.pending = Recording()
    second.start()
    try:
        drive(second, lambda: not PendingMessage.objects.exists(), timeout=30, what="every row")
        took = (timezone.now() - killed).total_seconds()
    finally:
        second.stop()
    early = [pk for pk, until in leased_until.items() if claimed_at[pk] < until]
    assert not early, f"{len(early)} rows claimed while the killed relay's lease still ran"
    assert took < lease + 10, took
    assert second.sent == 100
    sent = names(messages(broker, cqrs_settings["queue"]))
    assert set(sent) == {f"v{n}" for n in range(100)} and len(sent) <= 200


def test_a_claim_deletes_the_confirmed_rows_it_is_handed_in_its_transaction() -> None:
    """The relay records confirms with its next claim: only the claimer's rows go."""
    rows = store_rows(5)
    store = PendingStore()
    mine = store.claim("relay-a", 2, 60)
    theirs = store.claim("relay-b", 1, 60)
    assert [r.pk for r in mine] == [rows[0].pk, rows[1].pk] and theirs[0].pk == rows[2].pk

    rest = store.mark_sent_and_claim("relay-a", [rows[0].pk, rows[1].pk, rows[2].pk], 10, 60)

    assert [r.pk for r in rest] == [rows[3].pk, rows[4].pk]
    left = set(PendingMessage.objects.values_list("pk", flat=True))
    assert left == {rows[2].pk, rows[3].pk, rows[4].pk}  # relay-b's row stays
