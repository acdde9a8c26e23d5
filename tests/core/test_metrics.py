"""``django_messaging.core.metrics``: no-ops until enabled, counters and gauges once enabled.

Each case runs in a fresh interpreter: enabling is for the life of a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SETUP = """
import os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
import django
django.setup()
from django_messaging.core import metrics, status
"""


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SETUP + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_disabled_calls_do_nothing_and_the_client_is_not_imported() -> None:
    out = run(
        """
        metrics.produced("kafka", "t")
        metrics.consumed_batch("kafka", ["t"], time.perf_counter())
        metrics.handled("outbox", "q", time.perf_counter())
        print(metrics.enabled, metrics._metrics, "prometheus_client" in sys.modules)
        """
    )
    assert out.split() == ["False", "{}", "False"]


def test_enable_without_prometheus_client_returns_false() -> None:
    out = run(
        """
        sys.modules["prometheus_client"] = None  # what an install without the extra has
        print(metrics.available(), metrics.enable(), metrics.enabled)
        metrics.produced("kafka", "t")
        """
    )
    assert out.split() == ["False", "False", "False"]


def test_counters_histograms_and_status_gauges() -> None:
    out = run(
        """
        from prometheus_client import CollectorRegistry, generate_latest
        registry = CollectorRegistry()
        status.register("probe", "thing", lambda timeout: [
            status.Figure("probe", "probe_lag", status.Kind.LAG, 7, (("topic", "t"),), "lag")
        ])
        def broken(timeout):
            raise status.Unreachable("gone")
        status.register("probe", "other", broken)
        assert metrics.enable(registry=registry, status_packages=["probe"])
        assert metrics.enable()  # again: nothing changes
        started = time.perf_counter()
        metrics.produced("kafka", "t", 3)
        metrics.consumed_batch("kafka", ["t", "t", "u"], started)
        metrics.failed("kafka", "t")
        metrics.retried("kafka", "t")
        metrics.dead_lettered("kafka", "t")
        metrics.handled("outbox", "q", started)
        print(generate_latest(registry).decode())
        """
    )
    lines = set(out.splitlines())
    for expected in (
        'messaging_messages_produced_total{destination="t",package="kafka"} 3.0',
        'messaging_messages_consumed_total{destination="t",package="kafka"} 2.0',
        'messaging_messages_consumed_total{destination="u",package="kafka"} 1.0',
        'messaging_messages_failed_total{destination="t",package="kafka"} 1.0',
        'messaging_messages_retried_total{destination="t",package="kafka"} 1.0',
        'messaging_messages_dead_lettered_total{destination="t",package="kafka"} 1.0',
        'messaging_messages_consumed_total{destination="q",package="outbox"} 1.0',
        'messaging_handler_duration_seconds_count{destination="q",package="outbox"} 1.0',
        'messaging_batch_duration_seconds_count{package="kafka",stage="consume"} 1.0',
        'messaging_probe_lag{package="probe",topic="t"} 7.0',
        'messaging_status_up{package="probe",service="thing"} 1.0',
        'messaging_status_up{package="probe",service="other"} 0.0',
    ):
        assert expected in lines, out
    # Only the packages asked for: no outbox or Kafka gauges.
    assert "messaging_outbox_backlog" not in out


def test_a_fork_waits_for_the_scrape_in_progress() -> None:
    """A worker forked while ``/metrics`` is collecting would start with the scrape's client
    locks held by a thread it does not have: the fork waits until the scrape is done."""
    out = run(
        """
        import socket, threading, urllib.request
        entered, release = threading.Event(), threading.Event()
        def slow(timeout):
            entered.set()
            release.wait(10)
            return [status.Figure("probe", "probe_lag", status.Kind.LAG, 1, (("topic", "t"),), "lag")]
        status.register("probe", "slow", slow)
        assert metrics.enable(status_packages=["probe"])
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        metrics.serve(port, "127.0.0.1")
        url = f"http://127.0.0.1:{port}/metrics"
        scraped = []
        scrape = threading.Thread(target=lambda: scraped.append(urllib.request.urlopen(url, timeout=20).read()))
        scrape.start()
        assert entered.wait(10)
        forked = []
        def fork():
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            forked.append(time.monotonic())
            os.waitpid(pid, 0)
        forking = threading.Thread(target=fork)
        forking.start()
        time.sleep(0.5)
        print("during", bool(forked))
        released = time.monotonic()
        release.set()
        forking.join(10)
        scrape.join(10)
        print("after", forked[0] >= released, b"probe_lag" in scraped[0])
        """
    )
    assert out.split() == ["during", "False", "after", "True", "True"], out
