"""Service fixtures shared by every package's tests.

A service that is needed and missing fails the run with what is missing and how to start it;
nothing is skipped silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from tests import services


def _fail_missing(exc: services.ServiceMissing) -> None:
    pytest.fail(str(exc), pytrace=False)


def pytest_sessionstart(session: pytest.Session) -> None:
    db = settings.DATABASES["default"]["ENGINE"]
    try:
        if db.endswith("postgresql"):
            services.require("postgres", services.POSTGRES_URL, 5432)
        elif db.endswith("mysql"):
            services.require("mariadb", services.MARIADB_URL, 3306)
    except services.ServiceMissing as exc:
        pytest.exit(f"MISSING SERVICE: {exc}", returncode=3)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[services.KafkaBroker]:
    """One Kafka-protocol broker for the session; its address goes into MESSAGING['KAFKA']."""
    try:
        broker = services.start_kafka()
    except services.ServiceMissing as exc:
        _fail_missing(exc)
        raise
    # Without the Kafka app (its package tested alone) there is no KAFKA section to fill in.
    kafka_section = settings.MESSAGING.get("KAFKA", {})
    global_config = kafka_section.setdefault("GLOBAL_CONFIG", {})
    previous = global_config.get("bootstrap.servers")
    global_config["bootstrap.servers"] = broker.bootstrap
    try:
        yield broker
    finally:
        global_config["bootstrap.servers"] = previous
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: services.KafkaBroker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    try:
        services.require("rabbitmq", services.RABBITMQ_URL, 5672)
    except services.ServiceMissing as exc:
        _fail_missing(exc)
    return services.RABBITMQ_URL


@pytest.fixture(scope="session")
def stomp_address() -> tuple[str, int]:
    try:
        return services.ensure_stomp()
    except services.ServiceMissing as exc:
        _fail_missing(exc)
        raise


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("orders")`` → ``orders-test_x-1a2b3c4d``: a topic/queue/group of this test only."""

    def make(prefix: str = "t") -> str:
        test = request.node.name.replace("[", "-").replace("]", "")[:40]
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def spans() -> Iterator[Any]:
    """Tracing on for one test, into an in-memory exporter (``spans.get_finished_spans()``);
    ``spans.tracer`` starts the test's own spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from django_messaging.core import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.enable(provider)
    exporter.tracer = provider.get_tracer("tests")  # type: ignore[attr-defined]
    try:
        yield exporter
    finally:
        tracing.disable()
        provider.shutdown()


@pytest.fixture(params=[False, True], ids=["client-side binding", "server-side binding"])
def pg_binding(request: pytest.FixtureRequest) -> Iterator[None]:
    """The test's PostgreSQL connection with the ``server_side_binding`` option off, then on
    (a test of a transactional test case: the connection is closed to take it)."""
    from django.db import connection

    from django_messaging.core.worker import close_connections_and_pools

    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL option")
    options = connection.settings_dict["OPTIONS"]
    before = options.get("server_side_binding", _ABSENT)
    options["server_side_binding"] = request.param
    close_connections_and_pools()
    yield
    if before is _ABSENT:
        options.pop("server_side_binding")
    else:
        options["server_side_binding"] = before
    close_connections_and_pools()


@pytest.fixture
def new_pg_session() -> Iterator[None]:
    """The test starts on a PostgreSQL session of its own, and leaves none behind: what it
    prepares or sets is not met by another test (with a connection pool, a closed connection
    goes back to the pool with its session)."""
    from django_messaging.core.worker import close_connections_and_pools

    close_connections_and_pools()
    yield
    close_connections_and_pools()


_ABSENT = object()
