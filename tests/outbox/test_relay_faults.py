"""The relay as a real process under faults: database outages, a killed relay's claims."""

from __future__ import annotations

import signal

import pytest

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from tests.helpers import catches_signal, wait_until
from tests.outbox.conftest import Output, through
from tests.outbox.helpers import assert_gives_up_the_broker_at_once, topic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def sent() -> int:
    return Published.objects.filter(status=StatusChoice.SUCCEEDED).count()


def make_rows(destination: str, count: int) -> None:
    Published.objects.bulk_create(
        Published(destination=destination, body={"i": i}) for i in range(count)
    )


def test_receipts_that_arrive_while_the_database_is_down_are_recorded_after(
    stomp_address, probe, processes, unique_name, database_proxy, proxy
) -> None:
    """The relay took the broker's receipts off the transport, failed to mark the rows on a
    database error and lost them: it stopped claiming until the receipt timeout, then sent
    every one of those rows again."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    env = {
        **through(database_proxy),
        "MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{proxy.port}",
    }
    relay = processes.start("publish", "--batch-size", "500", env=env)
    output = Output(relay)
    make_rows(destination, 1)
    wait_until(lambda: sent() == 1, timeout=30, what="the relay running")

    total = 300
    proxy.hold()  # the receipts of the next batch wait at the proxy
    make_rows(destination, total)
    wait_until(
        lambda: Published.objects.filter(claimed_by__isnull=False).count() == total,
        what="the batch claimed and sent",
    )
    database_proxy.cut()
    proxy.release()  # the receipts arrive while the database is down
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


def test_a_killed_relays_claims_are_taken_over_within_seconds(
    stomp_address, probe, processes, unique_name, proxy
) -> None:
    """A relay killed with about a thousand rows claimed held them for its whole 300 s lease:
    the restarted relay sent them only when it ended. Leases are now short and renewed while
    the relay lives (the package default, as the test project leaves it)."""
    import time

    destination, _ = topic(unique_name)
    p = probe(destination)
    first = processes.start(
        "publish",
        "--batch-size",
        "500",
        env={"MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{proxy.port}"},
    )
    make_rows(destination, 1)
    wait_until(lambda: sent() == 1, timeout=30, what="the first relay running")
    total = 1500
    proxy.hold()  # no receipts: the relay fills its window and waits
    make_rows(destination, total)
    wait_until(
        lambda: Published.objects.filter(claimed_by__isnull=False).count() == 1000,
        what="two batches claimed and in flight",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    proxy.release()

    restarted = time.monotonic()
    second = processes.start("publish", "--batch-size", "500")
    wait_until(lambda: sent() == total + 1, timeout=25, what="every row sent after the restart")
    took = time.monotonic() - restarted
    wait_until(lambda: len(set(p.ids())) == total + 1, what="every message on the broker")
    assert len(p.ids()) - (total + 1) <= 1000  # at most the killed relay's claims go twice
    assert took < 20, took
    wait_until(lambda: catches_signal(second.pid, signal.SIGTERM), what="relay running")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0


def test_a_live_relay_keeps_its_claims_past_the_lease(stomp_address, proxy) -> None:
    """Leases are short; a relay that waits longer than one for its receipts renews them, so
    no other relay may take (and send again) rows it still has in flight."""
    import datetime as dt

    from django.conf import settings
    from django.test import override_settings
    from django.utils import timezone

    from django_messaging.outbox.relay import Relay, claim_batch

    outbox = {
        **settings.MESSAGING["OUTBOX"],
        "DEFAULT_RELAY_CLAIM_TIMEOUT": 1.5,
        "DEFAULT_RECEIPT_TIMEOUT": 30,
        "DEFAULT_STOMP_HEARTBEATS": (0, 0),  # the held connection must not time out
        "DEFAULT_STOMP_HOST_AND_PORTS": [proxy.address],
    }
    with override_settings(MESSAGING={**settings.MESSAGING, "OUTBOX": outbox}):
        relay = Relay(batch_size=20)
        relay.start()
        try:
            relay.run_once()  # connects; nothing to send yet
            assert relay.transport is not None and relay.transport.is_open()
            proxy.hold()
            make_rows("/topic/lease_renewal_test", 20)
            wait_until(lambda: (relay.run_once(), len(relay._inflight) == 20)[1])
            claimed_at = timezone.now()
            wait_until(
                lambda: (relay.run_once(), timezone.now() > claimed_at + dt.timedelta(seconds=4))[
                    1
                ],
                timeout=10,
                what="three leases' time",
            )
            assert claim_batch("another-relay", 20, 1.5) == []
            assert Published.objects.filter(claimed_by=relay.owner).count() == 20
            proxy.release()
            wait_until(lambda: (relay.run_once(), sent() == 20)[1], what="the receipts")
        finally:
            proxy.release()
            relay.stop()


def test_sigterm_while_the_broker_does_not_answer_stops_without_waiting_it_out(
    processes, unique_name, proxy
) -> None:
    """A broker that takes the connection and answers nothing: SIGTERM waited out the
    connect timeout (10 s) before the relay exited. It ends the wait; the row stays unsent."""
    destination, _ = topic(unique_name)
    proxy.hold()  # what the broker says waits at the proxy: no CONNECTED frame comes
    make_rows(destination, 1)  # the relay connects once there is something to send
    relay = processes.start("publish", env={"MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{proxy.port}"})
    output = Output(relay)
    wait_until(lambda: proxy.connections == 1, timeout=60, what="the relay connecting")
    assert_gives_up_the_broker_at_once(relay, output)
    assert sent() == 0
