"""The relay as a real process under faults: database outages, a killed relay's claims."""

from __future__ import annotations

import signal

import pytest

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from tests.helpers import catches_signal, wait_until
from tests.outbox.conftest import Output, through
from tests.outbox.helpers import topic
from tests.outbox.holding_proxy import HoldingProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def sent() -> int:
    return Published.objects.filter(status=StatusChoice.SUCCEEDED).count()


def make_rows(destination: str, count: int) -> None:
    Published.objects.bulk_create(
        Published(destination=destination, body={"i": i}) for i in range(count)
    )


@pytest.fixture
def broker_proxy(stomp_address):
    proxy = HoldingProxy(stomp_address).start()
    yield proxy
    proxy.stop()


def test_receipts_that_arrive_while_the_database_is_down_are_recorded_after(
    stomp_address, probe, processes, unique_name, database_proxy, broker_proxy
) -> None:
    """The relay took the broker's receipts off the transport, failed to mark the rows on a
    database error and lost them: it stopped claiming until the receipt timeout, then sent
    every one of those rows again."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    env = {
        **through(database_proxy),
        "MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{broker_proxy.port}",
    }
    relay = processes.start("publish", "--batch-size", "500", env=env)
    output = Output(relay)
    make_rows(destination, 1)
    wait_until(lambda: sent() == 1, timeout=30, what="the relay running")

    total = 300
    broker_proxy.hold()  # the receipts of the next batch wait at the proxy
    make_rows(destination, total)
    wait_until(
        lambda: Published.objects.filter(claimed_by__isnull=False).count() == total,
        what="the batch claimed and sent",
    )
    database_proxy.cut()
    broker_proxy.release()  # the receipts arrive while the database is down
    wait_until(
        lambda: output.text.count("database error") >= 2,
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
    assert relay.wait(30) == 0
