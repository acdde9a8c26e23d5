"""Relays as real processes: two at once, SIGKILL mid-batch, SIGTERM."""

from __future__ import annotations

import re
import signal

import pytest
from django.db.models import Q

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published
from tests.helpers import catches_signal, wait_until
from tests.outbox.conftest import Output
from tests.outbox.helpers import topic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def make_rows(destination: str, count: int) -> None:
    Published.objects.bulk_create(
        Published(destination=destination, body={"i": i}) for i in range(count)
    )


def sent() -> int:
    return Published.objects.filter(status=StatusChoice.SUCCEEDED).count()


def confirmed_in_log(output: str) -> int:
    found = re.findall(r"(\d+) messages confirmed by the broker", output)
    assert found, output[-3000:]
    return int(found[-1])


def test_two_concurrent_relays_never_send_the_same_row(
    stomp_address, probe, processes, unique_name
) -> None:
    """django-outbox-pattern issue #44: a second relay sent every pending row again."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    total = 600
    make_rows(destination, total)
    relays = [processes.start("publish", "--batch-size", "20") for _ in range(2)]
    wait_until(lambda: sent() == total, timeout=60, what="every row sent")
    wait_until(lambda: len(p.messages) >= total, what="every message on the broker")
    ids = p.ids()
    assert len(ids) == len(set(ids)) == total
    outputs = []
    for proc in relays:
        # A relay that lost the race for every row may still be starting up.
        wait_until(lambda p=proc: catches_signal(p.pid, signal.SIGTERM), what="relay running")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out[-3000:]
        outputs.append(out)
    counts = [confirmed_in_log(out) for out in outputs]
    assert sum(counts) == total, counts


def test_relay_killed_mid_batch_resends_only_unconfirmed_rows(
    stomp_address, probe, processes, unique_name
) -> None:
    """django-outbox-pattern 3.x sends the whole pass in one transaction: a crash re-sends
    every message of the pass. Here only rows without a recorded receipt go again."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    total = 1500
    make_rows(destination, total)
    env = {"MESSAGING_OUTBOX_CLAIM_TIMEOUT": "2"}
    first = processes.start("publish", "--batch-size", "20", env=env)
    wait_until(lambda: sent() >= 100, timeout=60, what="the first relay to be sending")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    done_before = sent()
    assert done_before < total, "the relay finished before it could be killed"
    in_flight = Published.objects.filter(
        status=StatusChoice.SCHEDULE, claimed_by__isnull=False
    ).count()
    second = processes.start("publish", "--batch-size", "100", env=env)
    wait_until(lambda: sent() == total, timeout=60, what="every row sent after the restart")
    wait_until(lambda: len(set(p.ids())) == total, what="every message on the broker")
    duplicates = len(p.ids()) - total
    assert duplicates <= in_flight, (duplicates, in_flight)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0


def test_sigterm_finishes_the_batch_and_releases_claims(
    stomp_address, probe, processes, unique_name
) -> None:
    destination, _ = topic(unique_name)
    p = probe(destination)
    total = 1500
    make_rows(destination, total)
    relay = processes.start("publish", "--batch-size", "20")
    wait_until(lambda: sent() >= 50, timeout=60, what="the relay to be sending")
    relay.send_signal(signal.SIGTERM)
    out, _ = relay.communicate(timeout=30)
    assert relay.returncode == 0, out[-3000:]
    assert "stopped cleanly" in out
    # nothing stays claimed: a new relay can go on at once, without waiting for a lease
    assert not Published.objects.filter(
        Q(claimed_by__isnull=False) & ~Q(status=StatusChoice.SUCCEEDED)
    ).exists()
    assert confirmed_in_log(out) == sent()
    again = processes.start("publish", "--batch-size", "200")
    wait_until(lambda: sent() == total, timeout=60, what="the rest sent")
    wait_until(lambda: len(p.messages) >= total)
    assert len(set(p.ids())) == total
    again.send_signal(signal.SIGTERM)
    assert again.wait(30) == 0


def test_supervised_relays_share_the_work(stomp_address, probe, processes, unique_name) -> None:
    """``publish --processes 2``: two relays under the core supervisor; SIGTERM stops both."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    total = 300
    make_rows(destination, total)
    relay = processes.start("publish", "--processes", "2", "--batch-size", "10")
    wait_until(lambda: sent() == total, timeout=60, what="every row sent")
    wait_until(lambda: len(p.messages) >= total)
    assert len(set(p.ids())) == len(p.ids()) == total
    relay.send_signal(signal.SIGTERM)
    out, _ = relay.communicate(timeout=60)
    assert relay.returncode == 0, out[-3000:]
    assert out.count("stopped cleanly") == 2


def test_relays_started_with_spawn_share_the_work(
    stomp_address, probe, processes, unique_name
) -> None:
    """``--start-method spawn``: each worker process sets Django up again and builds its relay
    from the pickled factory."""
    destination, _ = topic(unique_name)
    p = probe(destination)
    total = 200
    make_rows(destination, total)
    relay = processes.start("publish", "--workers", "2", "--start-method", "spawn")
    output = Output(relay)
    # Each spawned process sets Django up before its relay starts: the first may send every
    # row before the second is up, so both are waited for before they are stopped.
    wait_until(
        lambda: len(re.findall(r"relay \S+ starting", output.text)) == 2,
        timeout=90,
        what="both spawned relays running",
    )
    wait_until(lambda: sent() == total, timeout=90, what="every row sent")
    wait_until(lambda: len(p.messages) >= total)
    assert len(set(p.ids())) == total
    relay.send_signal(signal.SIGTERM)
    assert relay.wait(60) == 0, output.text[-3000:]
    wait_until(lambda: output.text.count("stopped cleanly") == 2, what="both relays stopped")
