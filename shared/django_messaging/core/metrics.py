"""Prometheus metrics of every package, through one small module.

Install the extra (``pip install "django-messaging[metrics]"``, which brings ``prometheus_client``)
and either give a worker command ``--metrics-port PORT`` or call :func:`enable` in a process of
your own. Until then every function here returns at once, and hot paths skip even that call by
testing :data:`enabled` first::

    from django_messaging.core import metrics

    if metrics.enabled:
        metrics.produced("kafka", topic)

Counters (``package``, ``destination`` labels; a destination is a topic, a queue, a CQRS id, a
leader application):

=========================================  ===================================================
``messaging_messages_produced_total``      handed to the broker (Kafka), confirmed by it (relay,
                                           CQRS)
``messaging_messages_consumed_total``      handed to a handler
``messaging_messages_failed_total``        a handler raised
``messaging_messages_retried_total``       to be tried again (in place, a retry topic, a relay
                                           row rescheduled)
``messaging_messages_dead_lettered_total`` given up: a dead letter, a ``FAILED`` outbox row
=========================================  ===================================================

Histograms: ``messaging_handler_duration_seconds`` (one message's handler; ``package``,
``destination``) and ``messaging_batch_duration_seconds`` (a Kafka consumer batch, a relay
batch, a follower's catch-up; ``package``, ``stage``).

Gauges are the figures of ``manage.py messaging_status`` (:mod:`django_messaging.core.status`),
read when ``/metrics`` is scraped: ``messaging_outbox_backlog``, ``messaging_kafka_consumer_lag``,
... and ``messaging_status_up`` (0 when a source's broker or database could not be reached).

Several processes (``--workers N``) write their counters to files in one directory
(``prometheus_client``'s multiprocess mode, :func:`enable` with ``multiprocess_dir``); the process
serving ``/metrics`` adds them up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from django import db

from django_messaging.core import status

__all__ = [
    "available",
    "batch",
    "consumed",
    "consumed_batch",
    "dead_lettered",
    "enable",
    "enabled",
    "failed",
    "handled",
    "produced",
    "registry",
    "retried",
    "serve",
]

logger = logging.getLogger(__name__)

#: True once :func:`enable` succeeded; callers on hot paths test it before calling.
enabled = False

_metrics: dict[str, Any] = {}
_registry: Any = None
_lock = threading.Lock()

_COUNTERS = {
    "produced": "messages handed to or confirmed by the broker",
    "consumed": "messages handed to a handler",
    "failed": "messages whose handler raised",
    "retried": "messages to be tried again",
    "dead_lettered": "messages given up (dead letters, failed outbox rows)",
}


def available() -> bool:
    """Is ``prometheus_client`` installed (the ``[metrics]`` extra)?"""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def enable(
    *,
    multiprocess_dir: str | None = None,
    status_packages: Sequence[str] | None = (),
    registry: Any = None,
) -> bool:
    """Start counting; ``False`` (and nothing changes) when ``prometheus_client`` is missing.

    ``multiprocess_dir``: counters go to files there, for processes that fork workers (the
    directory must exist and be empty at the start of the run). ``status_packages``: the
    packages whose :mod:`~django_messaging.core.status` figures are served as gauges (``None``:
    all). ``registry``: where the metrics are registered (``prometheus_client.REGISTRY`` by
    default; in multiprocess mode a registry of this module's own that reads the files).
    Calling it again changes nothing.
    """
    global enabled, _registry
    with _lock:
        if enabled:
            return True
        try:
            import prometheus_client
            from prometheus_client import values
        except ImportError:
            return False
        if multiprocess_dir is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
            # The value class is chosen when prometheus_client is imported; it may have been
            # imported before the directory was known.
            values.ValueClass = values.MultiProcessValue()
            from prometheus_client import multiprocess

            _registry = prometheus_client.CollectorRegistry()
            multiprocess.MultiProcessCollector(_registry, path=multiprocess_dir)
            target = None
        else:
            _registry = registry if registry is not None else prometheus_client.REGISTRY
            target = _registry
        for name, text in _COUNTERS.items():
            _metrics[name] = prometheus_client.Counter(
                f"messaging_messages_{name}",
                text,
                ["package", "destination"],
                registry=target,
            )
        _metrics["handler"] = prometheus_client.Histogram(
            "messaging_handler_duration_seconds",
            "seconds one message's handler took",
            ["package", "destination"],
            registry=target,
        )
        _metrics["batch"] = prometheus_client.Histogram(
            "messaging_batch_duration_seconds",
            "seconds one batch took (a Kafka consumer batch, a relay batch, a follower's catch-up)",
            ["package", "stage"],
            registry=target,
        )
        if status_packages is None or status_packages:
            _registry.register(StatusCollector(status_packages))
        enabled = True
        return True


def registry() -> Any:
    """The registry ``/metrics`` serves (``None`` before :func:`enable`)."""
    return _registry


def serve(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve ``/metrics`` from a thread of this process; returns the HTTP server.

    A process forked later (a worker) closes its copy of the listening socket. A fork waits
    for a scrape in progress, and a scrape for a fork: a scrape reads the status figures
    through database and Kafka clients, and a child forked halfway through would start with
    copies of their locks held by a thread it does not have (a worker whose own Kafka client
    then waits forever).
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr, registry=_OneScrapeAtATime(_registry))
    if hasattr(os, "register_at_fork"):

        def in_child() -> None:
            global _scraping
            _scraping = threading.RLock()  # the parent's, held by its forking thread
            server.socket.close()

        os.register_at_fork(
            before=_fork_starting, after_in_parent=_fork_done, after_in_child=in_child
        )
    logger.info("serving Prometheus metrics on %s:%d/metrics", addr, port)
    return server


#: Held by a scrape while it collects, and by this process while it forks.
_scraping = threading.RLock()


def _fork_starting() -> None:
    _scraping.acquire()


def _fork_done() -> None:
    _scraping.release()


class _OneScrapeAtATime:
    """The served registry, collected under ``_scraping``."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> list[Any]:
        with _scraping:
            return list(self.registry.collect())

    def restricted_registry(self, names: Iterable[str]) -> _OneScrapeAtATime:
        return _OneScrapeAtATime(self.registry.restricted_registry(names))


# --- what the packages call -----------------------------------------------------------------


def produced(package: str, destination: str, count: int = 1) -> None:
    if enabled:
        _metrics["produced"].labels(package, destination).inc(count)


def consumed(package: str, destination: str, count: int = 1) -> None:
    if enabled:
        _metrics["consumed"].labels(package, destination).inc(count)


def failed(package: str, destination: str, count: int = 1) -> None:
    if enabled:
        _metrics["failed"].labels(package, destination).inc(count)


def retried(package: str, destination: str, count: int = 1) -> None:
    if enabled:
        _metrics["retried"].labels(package, destination).inc(count)


def dead_lettered(package: str, destination: str, count: int = 1) -> None:
    if enabled:
        _metrics["dead_lettered"].labels(package, destination).inc(count)


def handled(package: str, destination: str, started: float) -> None:
    """One message handed to its handler at ``time.perf_counter()`` ``started``: counted as
    consumed, its duration observed."""
    if enabled:
        _metrics["consumed"].labels(package, destination).inc()
        _metrics["handler"].labels(package, destination).observe(time.perf_counter() - started)


def batch(package: str, stage: str, started: float) -> None:
    """A batch begun at ``time.perf_counter()`` ``started`` is done."""
    if enabled:
        _metrics["batch"].labels(package, stage).observe(time.perf_counter() - started)


def consumed_batch(package: str, destinations: Iterable[str], started: float) -> None:
    """A consumer batch begun at ``started``: one destination per message (counted as
    consumed), the batch's duration observed."""
    if enabled:
        counter = _metrics["consumed"]
        names = list(destinations)
        # Most batches come from one destination: counted without hashing every name.
        if names and names.count(names[0]) == len(names):
            counts: Mapping[str, int] = {names[0]: len(names)}
        else:
            counts = Counter(names)
        for destination, count in counts.items():
            counter.labels(package, destination).inc(count)
        _metrics["batch"].labels(package, "consume").observe(time.perf_counter() - started)


# --- gauges, read at scrape time ------------------------------------------------------------


class StatusCollector:
    """The :mod:`~django_messaging.core.status` figures as gauges, computed at each scrape."""

    def __init__(self, packages: Sequence[str] | None, timeout: float = 5.0) -> None:
        self.packages = packages
        self.timeout = timeout

    def describe(self) -> list[Any]:
        return []  # computed at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            report = status.collect(self.timeout, self.packages)
        finally:
            # This thread's connections (scrapes are rare), unless a transaction holds one.
            for connection in db.connections.all(initialized_only=True):
                if not connection.in_atomic_block:
                    connection.close()
        families: dict[str, Any] = {}
        for figure in report.figures:
            family = families.get(figure.metric)
            if family is None:
                family = families[figure.metric] = GaugeMetricFamily(
                    f"messaging_{figure.metric}",
                    figure.help or figure.metric.replace("_", " "),
                    labels=["package", *(k for k, _ in figure.labels)],
                )
            family.add_metric([figure.package, *(v for _, v in figure.labels)], figure.value)
        yield from families.values()
        up = GaugeMetricFamily(
            "messaging_status_up",
            "1 when a status source reached its broker or database at this scrape",
            labels=["package", "service"],
        )
        failing = {(p.package, p.service) for p in report.problems}
        wanted = None if self.packages is None else set(self.packages)
        for package, service in status.sources():
            if wanted is None or package in wanted:
                up.add_metric([package, service], 0 if (package, service) in failing else 1)
        yield up
