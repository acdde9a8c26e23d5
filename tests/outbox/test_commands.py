"""``publish``, ``subscribe`` and ``outbox_purge`` as commands: help, arguments, processes."""

from __future__ import annotations

import signal
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_messaging.core.commands import UsageError
from django_messaging.outbox.relay import Relay
from tests.helpers import wait_until
from tests.outbox.helpers import drive, topic
from tests.project.outbox_app.models import PLAIN, Order, PlainModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


@pytest.mark.parametrize("name", ["publish", "subscribe", "outbox_purge"])
def test_help_explains_with_an_example(name, capsys) -> None:
    with pytest.raises(SystemExit):
        call_command(name, "--help")
    assert "Example: ./manage.py" in capsys.readouterr().out.replace("\n", " ")


def test_subscribe_requires_destination() -> None:
    with pytest.raises(CommandError, match="destination"):
        call_command("subscribe", "tests.outbox.callbacks.store_order")


def test_subscribe_reports_a_callback_that_cannot_be_imported() -> None:
    with pytest.raises(UsageError, match="Could not import"):
        call_command("subscribe", "tests.outbox.callbacks.nope", "/topic/x")


def test_subscribe_with_a_callback_that_cannot_be_imported_exits_2(processes) -> None:
    """A usage error: nothing started, exit code 2 (the shared worker-command contract)."""
    sub = processes.start("subscribe", "tests.outbox.callbacks.nope", "/topic/x")
    out, _ = sub.communicate(timeout=60)
    assert sub.returncode == 2, out[-3000:]
    assert "Could not import" in out


def test_publish_rejects_zero_workers_under_its_processes_spelling(processes) -> None:
    """``--processes`` is django-outbox-pattern's spelling of ``--workers``."""
    relay = processes.start("publish", "--processes", "0")
    out, _ = relay.communicate(timeout=60)
    assert relay.returncode == 2, out[-3000:]
    assert "--workers must be at least 1" in out


def test_saved_model_reaches_the_subscribe_command_and_sigterm_exits_0(
    stomp_address, processes, unique_name
) -> None:
    """End to end: a decorated model's save, the relay, ``./manage.py subscribe`` in its own
    process storing an Order; SIGTERM stops it cleanly."""
    queue = unique_name("q")
    sub = processes.start("subscribe", "tests.outbox.callbacks.store_order", PLAIN, queue)
    wait_until(lambda: sub.poll() is not None or _queue_exists(queue), timeout=30)
    assert sub.poll() is None
    obj = PlainModel.objects.create(field_one="One", field_two="Two")
    relay = Relay()
    relay.start()
    try:
        drive(relay, lambda: relay.sent >= 1)
    finally:
        relay.stop()
    wait_until(lambda: Order.objects.filter(number=str(obj.id)).exists(), timeout=30)
    sub.send_signal(signal.SIGTERM)
    out, _ = sub.communicate(timeout=30)
    assert sub.returncode == 0, out[-3000:]
    assert "stopped cleanly" in out


def _queue_exists(name: str) -> bool:
    from tests.outbox.conftest import queue_depth

    try:
        queue_depth(name)
    except AssertionError:
        return False
    return True


def test_subscriber_killed_mid_callback_loses_nothing_and_processes_once(
    stomp_address, processes, unique_name, tmp_path
) -> None:
    """django-outbox-pattern 0.9.0 (research E6): the Received row was committed before the
    callback ran, so a worker killed mid-callback left the message marked done and lost it."""
    from django_messaging.outbox.factories import factory_producer
    from django_messaging.outbox.models import Received

    destination, _ = topic(unique_name)
    queue = unique_name("q")
    args = ("subscribe", "tests.outbox.callbacks.slow_first_time", destination, queue)
    first = processes.start(*args)
    wait_until(lambda: first.poll() is not None or _queue_exists(queue), timeout=30)
    marker = tmp_path / "marker"
    with factory_producer() as producer:
        producer.send_event(destination, {"number": "K-1", "marker": str(marker)})
    wait_until(marker.exists, timeout=30, what="the callback to be running")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert not Order.objects.filter(number="K-1").exists()
    assert not Received.objects.exists()
    second = processes.start(*args)
    wait_until(lambda: Order.objects.filter(number="K-1").exists(), timeout=30)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    assert Order.objects.filter(number="K-1").count() == 1
    assert Received.objects.count() == 1


def test_sigterm_waits_at_most_the_shutdown_timeout_then_the_message_is_redelivered(
    stomp_address, processes, unique_name, tmp_path
) -> None:
    """django-outbox-pattern 3.1's DEFAULT_CONSUMER_SHUTDOWN_TIMEOUT: a callback that does not
    finish holds SIGTERM only that long; the process exits 1 without acknowledging, its
    transaction is rolled back, and the broker gives the message to the next subscriber."""
    from django_messaging.outbox.factories import factory_producer
    from django_messaging.outbox.models import Received

    destination, _ = topic(unique_name)
    queue = unique_name("q")
    args = ("subscribe", "tests.outbox.callbacks.slow_first_time", destination, queue)
    first = processes.start(*args, env={"MESSAGING_OUTBOX_SHUTDOWN_TIMEOUT": "1"})
    wait_until(lambda: first.poll() is not None or _queue_exists(queue), timeout=30)
    marker = tmp_path / "marker"
    with factory_producer() as producer:
        producer.send_event(destination, {"number": "T-1", "marker": str(marker)})
    wait_until(marker.exists, timeout=30, what="the callback to be running")
    signalled = time.monotonic()
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=20)  # the callback alone would take 60 s
    assert first.returncode == 1, out[-3000:]
    assert time.monotonic() - signalled < 10
    assert "did not stop within 1s" in out
    assert not Order.objects.filter(number="T-1").exists()
    assert not Received.objects.exists()
    second = processes.start(*args)
    wait_until(lambda: Order.objects.filter(number="T-1").exists(), timeout=30)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    assert Received.objects.count() == 1
