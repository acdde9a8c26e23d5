"""The relay depends on the ``Transport`` interface only: another broker plugs in unchanged."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import pytest

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import Relay
from django_messaging.outbox.transports.base import Confirmations, OutgoingMessage, Transport
from tests.outbox.helpers import drive

pytestmark = pytest.mark.django_db(transaction=True)


class ListTransport(Transport):
    """A broker that keeps messages in a list and confirms every other poll (what a Kafka
    transport's delivery reports would look like to the relay)."""

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []
        self.unconfirmed: list[Hashable] = []
        self.opened = 0
        self.polls = 0

    def open(self) -> None:
        self.opened += 1

    def is_open(self) -> bool:
        return self.opened > 0

    def send(self, messages: Sequence[OutgoingMessage]) -> list[Hashable]:
        self.messages.extend(messages)
        self.unconfirmed.extend(m.key for m in messages)
        return []

    def poll(self, timeout: float) -> Confirmations:
        self.polls += 1
        if self.polls % 2:
            return Confirmations()
        confirmed, self.unconfirmed = self.unconfirmed, []
        return Confirmations(confirmed=confirmed)

    def close(self) -> None:
        pass


def test_the_relay_runs_on_any_transport() -> None:
    rows = [Published.objects.create(destination=f"orders-{i}", body={"i": i}) for i in range(7)]
    transport = ListTransport()
    relay = Relay(transport, batch_size=3)
    relay.start()
    try:
        drive(relay, lambda: relay.sent == 7, timeout=10)
    finally:
        relay.stop()
    assert [m.key for m in transport.messages] == [r.id for r in rows]
    assert transport.messages[0].headers["dop-msg-id"] == str(rows[0].id)
    assert Published.objects.filter(status=StatusChoice.SUCCEEDED).count() == 7
    assert transport.opened == 1
