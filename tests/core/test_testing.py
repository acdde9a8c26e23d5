"""``django_messaging.testing``: the in-memory transport under the core relay, the message log's
assertions, commit hooks in a test case, and the pytest plugins' fixtures."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import TestCase

from django_messaging.core.relay import Relay, RelayPolicy
from django_messaging.core.transports import OutgoingMessage
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from django_messaging.testing import MemoryTransport, MessageLog, SentMessage, committed
from tests.core.relay_store import KeyedStore


@pytest.mark.django_db
def test_the_core_relay_sends_through_the_memory_transport(messaging_transport) -> None:
    rows = [
        Published.objects.create(destination="orders", body={"n": n}, headers={"key": "k"})
        for n in range(3)
    ]
    Published.objects.create(destination="refused", body={"n": 9})
    messaging_transport.refuse.add("refused")
    relay = Relay(KeyedStore(), messaging_transport, RelayPolicy(max_attempts=1))
    relay.start()
    messaging_transport.open()
    try:
        relay.send_rows(relay.store.claim(relay.owner, 10, 10))
    finally:
        relay.stop()
    assert [m.extra["key"] for m in messaging_transport.log] == [r.id for r in rows]
    assert Published.objects.filter(status=StatusChoice.SUCCEEDED).count() == 3
    refused = Published.objects.get(destination="refused")
    assert refused.status == StatusChoice.FAILED  # rejected, given up after one attempt


def test_message_log_assertions() -> None:
    log = MessageLog()
    transport = MemoryTransport(log, decoder=lambda m: lambda body: body.decode().upper())
    transport.open()
    transport.send(
        [
            OutgoingMessage(1, "a", b"one", {"h": "1"}, "text/plain", ordering_key="k1"),
            OutgoingMessage(2, "b", b"two"),
        ]
    )
    assert transport.poll(0).confirmed == [1, 2]
    first = log.assert_sent("a", key="k1", headers={"h": 1}, value="ONE")
    assert first.headers == {"h": "1", "content-type": "text/plain"}
    assert log.values("b") == ["TWO"]
    assert len(log.filter(body=b"two")) == 1
    log.assert_not_sent("a", value="TWO")
    with pytest.raises(AssertionError, match=r"expected a message to a matching value='THREE'"):
        log.assert_sent("a", value="THREE")
    with pytest.raises(AssertionError, match="expected 2 message"):
        log.assert_sent("a", count=2)
    with pytest.raises(AssertionError, match="found 1"):
        log.assert_not_sent("b")


def test_undecodable_bodies_are_still_shown() -> None:
    log = MessageLog()
    log.record(SentMessage("a", b"\xff", decoder=lambda body: body.decode()))
    with pytest.raises(AssertionError, match="undecodable"):
        log.assert_sent("a", value="x")


class CommittedTests(TestCase):
    def test_hooks_run_at_the_end_of_the_block(self) -> None:
        ran: list[str] = []
        with committed():
            transaction.on_commit(lambda: ran.append("outside"))
            with transaction.atomic():
                transaction.on_commit(lambda: ran.append("inside"))
            try:
                with transaction.atomic():
                    transaction.on_commit(lambda: ran.append("rolled back"))
                    raise RuntimeError
            except RuntimeError:
                pass
            assert ran == []
        assert ran == ["outside", "inside"]

    def test_a_transaction_of_the_code_under_test_keeps_its_hooks(self) -> None:
        ran: list[str] = []
        with transaction.atomic():
            with committed():
                transaction.on_commit(lambda: ran.append("hook"))
            assert ran == []  # the enclosing atomic block has not committed

    def test_hooks_added_by_hooks_run_too(self) -> None:
        ran: list[str] = []
        with committed():
            transaction.on_commit(lambda: transaction.on_commit(lambda: ran.append("second")))
        assert ran == ["second"]


@pytest.mark.django_db(transaction=True)
def test_outside_a_test_transaction_django_runs_the_hooks() -> None:
    ran: list[str] = []
    with committed():
        with transaction.atomic():
            transaction.on_commit(lambda: ran.append("hook"))
        assert ran == ["hook"]  # at the real commit
    assert ran == ["hook"]


def test_every_distribution_registers_its_pytest_plugin(request) -> None:
    """Entry points ``pytest11`` of the five distributions (installed here)."""
    plugins = request.config.pluginmanager
    names = [
        "django_messaging",
        *(f"django_messaging_{p}" for p in ("kafka", "outbox", "cqrs", "eventstore")),
    ]
    assert [name for name in names if not plugins.has_plugin(name)] == []
