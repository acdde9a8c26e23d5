"""``django_messaging.kafka.utils.retry``, django-kafka's ``django_kafka.utils.retry``."""

from __future__ import annotations

import pytest

from django_messaging.kafka.utils import retry


@pytest.fixture
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr("time.sleep", waited.append)
    return waited


def flaky(failures, exc=ConnectionError):
    calls = []

    def call(x):
        calls.append(x)
        if len(calls) <= failures:
            raise exc(f"failure {len(calls)}")
        return x * 2

    return call, calls


def test_retries_until_success_with_backoff(sleeps):
    call, calls = flaky(3)
    assert retry((ConnectionError,), tries=5, delay=0.5, backoff=2)(call)(21) == 42
    assert len(calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_gives_up_after_tries_with_the_last_error(sleeps):
    call, calls = flaky(10)
    with pytest.raises(ConnectionError, match="failure 3"):
        retry((ConnectionError,), tries=3, delay=1)(call)(1)
    assert len(calls) == 3
    assert sleeps == [1, 1]


def test_minus_one_retries_without_limit(sleeps):
    call, calls = flaky(50)
    assert retry((ConnectionError,))(call)(1) == 2
    assert len(calls) == 51


def test_other_errors_propagate_at_once(sleeps):
    call, calls = flaky(1, exc=KeyError)
    with pytest.raises(KeyError):
        retry((ConnectionError,), tries=3)(call)(1)
    assert calls == [1] and sleeps == []


def test_zero_tries_is_refused():
    with pytest.raises(ValueError, match="tries"):
        retry(tries=0)
