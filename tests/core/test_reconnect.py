"""The one back-off policy, and telling a database outage from a bad request, against the real
database."""

from __future__ import annotations

import threading
import time

import django
import pytest
from django.db import DatabaseError, IntegrityError, OperationalError, connection
from django.db.utils import load_backend

from django_messaging.core.reconnect import Backoff, database_outage
from tests.proxy import TcpProxy


def test_delay_doubles_from_initial_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    policy = Backoff(initial=0.5, cap=4)
    assert [policy.nominal(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    for attempt in range(1, 8):
        samples = [policy.delay(attempt) for _ in range(200)]
        nominal = policy.nominal(attempt)
        assert all(nominal / 2 <= s <= nominal for s in samples)
        assert len({round(s, 6) for s in samples}) > 100  # spread, not one value
    assert policy.nominal(10_000) == 4  # no overflow for a long outage


@pytest.mark.parametrize("initial,cap", [(0, 1), (-1, 1), (2, 1)])
def test_an_impossible_policy_is_refused(initial: float, cap: float) -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=initial, cap=cap)


def test_wait_returns_false_as_soon_as_stop_is_set() -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert Backoff(initial=30, cap=30).wait(1, stop) is False
    assert time.monotonic() - started < 5


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_is_an_outage_and_a_bad_request_is_not() -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to lose")
    settings = connection.settings_dict
    proxy = TcpProxy((settings["HOST"], int(settings["PORT"]))).start()
    # A connection of its own through the proxy, outside the test's connection handler.
    backend = load_backend(settings["ENGINE"])
    probe = backend.DatabaseWrapper({**settings, "HOST": "127.0.0.1", "PORT": proxy.port})
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
        proxy.cut()  # the open connection is closed under it, new ones are refused
        with pytest.raises(DatabaseError) as broken, probe.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert database_outage(broken.value), repr(broken.value)
        probe.close()
        with pytest.raises(OperationalError) as refused:
            probe.ensure_connection()
        assert database_outage(refused.value), repr(refused.value)
    finally:
        proxy.stop()
        probe.close()

    with pytest.raises(DatabaseError) as bad, connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM django_content_type")
    assert not database_outage(bad.value)
    assert not database_outage(IntegrityError("duplicate key value violates unique constraint"))
    assert not database_outage(ValueError("connection refused"))


@pytest.mark.django_db(transaction=True)
def test_a_connection_pool_that_cannot_connect_is_an_outage() -> None:
    """Django's connection pool (PostgreSQL, Django 5.1+): with the server away, a connection
    is waited for, then refused with the pool's timeout, which is an outage too."""
    if connection.vendor != "postgresql" or django.VERSION < (5, 1):
        pytest.skip("the connection pool of Django's PostgreSQL backend")
    pytest.importorskip("psycopg_pool")
    settings = connection.settings_dict
    proxy = TcpProxy((settings["HOST"], int(settings["PORT"]))).start()
    backend = load_backend(settings["ENGINE"])
    options = {**settings["OPTIONS"], "pool": {"min_size": 1, "timeout": 1}}
    probe = backend.DatabaseWrapper(
        {**settings, "HOST": "127.0.0.1", "PORT": proxy.port, "OPTIONS": options}
    )
    refused: OperationalError | None = None
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
        proxy.cut()
        for _ in range(5):  # the connections the pool opened before fail first, then none comes
            probe.close()
            try:
                with probe.cursor() as cursor:
                    cursor.execute("SELECT 1")
            except OperationalError as exc:
                assert database_outage(exc), repr(exc)
                if "couldn't get a connection" in str(exc):
                    refused = exc
                    break
        assert refused is not None, "the pool never timed out"
    finally:
        proxy.stop()
        probe.close()
        probe.close_pool()
