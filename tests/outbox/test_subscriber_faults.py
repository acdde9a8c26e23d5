"""The subscriber as a real process under faults: a restart with dead letters waiting, a
database outage while a message is handled."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.helpers import catches_signal, wait_until
from tests.outbox.conftest import Output, queue_depth, through
from tests.outbox.helpers import assert_gives_up_the_broker_at_once, topic
from tests.outbox.stomp_probe import send_raw
from tests.project.outbox_app.models import Order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def consumers(queue: str) -> int:
    done = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "consumers"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for line in done.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == queue:
            return int(parts[1])
    return 0


@pytest.fixture
def dead_letter_queues():
    """Names of dead-letter queues a test makes; deleted afterwards (they never expire)."""
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(
            ["rabbitmqctl", "delete_queue", "-q", name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )


def stop(proc: subprocess.Popen[str], output: Output) -> None:
    wait_until(lambda: catches_signal(proc.pid, signal.SIGTERM), what="the worker running")
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit 30 s after SIGTERM; it said:\n{output.text}") from None
    assert code == 0, output.text


def test_restart_with_a_dead_letter_waiting_leaves_the_dead_letter_queue_alone(
    stomp_address, processes, unique_name, dead_letter_queues
) -> None:
    """The dead-letter queue was declared by subscribing to it: a restart received its dead
    letters as main-queue messages, dead-lettered them again (90-166 copies in 10 s) and
    reconnected in a loop on the broker's "Subscription not found" errors."""
    destination, _ = topic(unique_name)
    queue = unique_name("q")
    dlq = f"DLQ.{queue}"
    dead_letter_queues.append(dlq)
    args = ("subscribe", "tests.outbox.callbacks.store_order", destination, queue)
    first = processes.start(*args)
    first_output = Output(first)
    wait_until(lambda: consumers(queue) == 1, timeout=30, what="the first subscriber")
    send_raw(stomp_address, destination, '{"number": "no-id"}', {})  # no idempotency header
    wait_until(lambda: queue_depth(dlq)[0] == 1, timeout=30, what="one dead letter")
    stop(first, first_output)

    second = processes.start(*args)
    output = Output(second)
    wait_until(lambda: consumers(queue) == 1, timeout=30, what="the restarted subscriber")
    send_raw(stomp_address, destination, json.dumps({"number": "good"}), {"dop-msg-id": "good"})
    wait_until(
        lambda: Order.objects.filter(number="good").exists(),
        timeout=20,
        what="the next good message saved",
    )
    assert queue_depth(dlq) == (1, 0)
    stop(second, output)
    assert "Subscription not found" not in output.text
    assert "broker error" not in output.text


def test_database_outage_while_handling_waits_for_the_database(
    stomp_address, processes, unique_name, database_proxy, dead_letter_queues, tmp_path
) -> None:
    """A message handled while PostgreSQL is down was dead-lettered ("callback failed 3 times:
    OperationalError"): the outage is not the message's fault. It waits for the database."""
    from django_messaging.outbox.models import Received

    destination, _ = topic(unique_name)
    queue = unique_name("q")
    dlq = f"DLQ.{queue}"
    dead_letter_queues.append(dlq)
    sub = processes.start(
        "subscribe",
        "tests.outbox.callbacks.waits_for_go",
        destination,
        queue,
        env=through(database_proxy),
    )
    output = Output(sub)
    wait_until(lambda: consumers(queue) == 1, timeout=30, what="the subscriber")
    running, go = tmp_path / "running", tmp_path / "go"
    body = {"number": "during-outage", "running": str(running), "go": str(go)}
    send_raw(stomp_address, destination, json.dumps(body), {"dop-msg-id": "outage-1"})
    wait_until(running.exists, timeout=30, what="the callback to be running")
    database_proxy.cut()
    go.write_text("go")
    wait_until(
        lambda: "dead-lettered" in output.text or output.text.count("database unavailable") >= 3,
        timeout=30,
        what="the subscriber to meet the outage a few times",
    )
    database_proxy.restore()
    wait_until(
        lambda: Order.objects.filter(number="during-outage").exists(),
        timeout=30,
        what="the message saved after the restore",
    )
    assert Order.objects.filter(number="during-outage").count() == 1
    assert Received.objects.filter(msg_id="outage-1").count() == 1
    wait_until(lambda: queue_depth(queue) == (0, 0), what="the message acknowledged")
    assert queue_depth(dlq) == (0, 0)
    assert "database available again" in output.text
    stop(sub, output)


def test_sigterm_while_the_broker_does_not_answer_stops_without_waiting_it_out(
    processes, unique_name, proxy
) -> None:
    """A broker that takes the connection and answers nothing (one still starting, a stuck
    proxy): SIGTERM waited out the connect timeout (10 s) before the subscriber exited. It
    ends the wait."""
    destination, _ = topic(unique_name)
    proxy.hold()  # what the broker says waits at the proxy: no CONNECTED frame comes
    sub = processes.start(
        "subscribe",
        "tests.outbox.callbacks.store_order",
        destination,
        unique_name("q"),
        env={"MESSAGING_STOMP_ADDRESS": f"127.0.0.1:{proxy.port}"},
    )
    output = Output(sub)
    wait_until(lambda: proxy.connections == 1, timeout=60, what="the subscriber connecting")
    assert_gives_up_the_broker_at_once(sub, output)
