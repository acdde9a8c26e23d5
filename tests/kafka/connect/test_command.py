"""``kafka_connect`` in-process: every flag, step order, failures and exit codes."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_messaging.kafka.connect.connector import Connector
from tests.kafka.connect.connect_server import FakeConnect

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"


class OrdersSource(Connector):
    config = {"connector.class": FILE_SOURCE, "file": "/tmp/orders.txt", "topic": "orders"}


class UsersSource(Connector):
    config = {"connector.class": FILE_SOURCE, "file": "/tmp/users.txt", "topic": "users"}


class InvalidSource(Connector):
    config = {"connector.class": FILE_SOURCE, "topic": "nofile", "db.password": "pw-s3cret"}


class RetiredSource(Connector):
    mark_for_removal = True
    config = {"connector.class": FILE_SOURCE, "file": "/tmp/old.txt", "topic": "old"}


class Run:
    def __init__(self, out: str, err: str, error: CommandError | None) -> None:
        self.out, self.err, self.error = out, err, error

    @property
    def text(self) -> str:
        return self.out + self.err


def run(*args: str, fails: bool = False) -> Run:
    out, err = io.StringIO(), io.StringIO()
    error = None
    try:
        call_command("kafka_connect", *args, stdout=out, stderr=err, no_color=True)
    except CommandError as exc:
        error = exc
    if fails:
        assert error is not None, out.getvalue() + err.getvalue()
    else:
        assert error is None, f"{error}\n{out.getvalue()}{err.getvalue()}"
    return Run(out.getvalue(), err.getvalue(), error)


@pytest.fixture
def connect(
    connect_settings: Callable[..., Any],
    connect_server: FakeConnect,
    register_connector: Callable[[type], type],
) -> FakeConnect:
    for cls in (OrdersSource, UsersSource):
        register_connector(cls)
    return connect_server


def test_without_arguments_prints_help(connect: FakeConnect) -> None:
    result = run()
    assert "--check-status" in result.out and "examples:" in result.out
    assert connect.requests == []


def test_a_connector_without_a_step_is_a_usage_error(connect: FakeConnect) -> None:
    """django-kafka 0.5.13 silently did nothing for ``kafka_connect <connector>``."""
    result = run("OrdersSource", fails=True)
    assert result.error is not None and result.error.returncode == 2
    assert "Nothing to do for 'OrdersSource'" in str(result.error)


def test_list_needs_no_connect(
    register_connector: Callable[[type], type], connect_settings: Callable[..., Any]
) -> None:
    connect_settings(CONNECT_HOST=None)
    register_connector(OrdersSource)
    register_connector(RetiredSource)

    result = run("--list")

    lines = result.out.splitlines()
    assert lines[0].startswith("OrdersSource  [tests.kafka.connect.test_command.OrdersSource]")
    assert lines[1].startswith("RetiredSource (marked for removal)")


def test_validate_publish_check_status_for_all(connect: FakeConnect) -> None:
    first = run("--validate", "--publish", "--check-status")

    assert "[validate 1/2] OrdersSource: valid" in first.out
    assert "[publish 1/2] OrdersSource: created" in first.out
    assert "[publish 2/2] UsersSource: created" in first.out
    assert "[check-status 2/2] UsersSource: RUNNING (task 0 RUNNING)" in first.out
    assert "2 connector(s): all succeeded." in first.out
    assert sorted(connect.connectors) == ["OrdersSource", "UsersSource"]
    methods = [(r.method, r.path.split("/")[1]) for r in connect.requests]
    assert methods == [
        ("PUT", "connector-plugins"),
        ("PUT", "connector-plugins"),
        ("PUT", "connectors"),
        ("PUT", "connectors"),
        ("GET", "connectors"),
        ("GET", "connectors"),
    ]

    second = run("--publish")
    assert "[publish 1/2] OrdersSource: updated" in second.out


def test_one_connector_by_name_or_python_path(
    connect: FakeConnect, connect_settings: Callable[..., Any]
) -> None:
    """django-kafka 0.5.13 documented a Python path for the positional argument but accepted
    only the registry key (the connector name, prefix captured at import)."""
    run("OrdersSource", "--publish")
    assert list(connect.connectors) == ["OrdersSource"]

    run("tests.kafka.connect.test_command.UsersSource", "--publish")
    assert sorted(connect.connectors) == ["OrdersSource", "UsersSource"]

    # the prefix is read when the command runs, after registration
    connect_settings(CONNECTOR_NAME_PREFIX="acme")
    run("acme.OrdersSource", "--publish")
    assert "acme.OrdersSource" in connect.connectors


def test_unknown_connector_lists_the_registered_ones(connect: FakeConnect) -> None:
    result = run("Nope", "--publish", fails=True)
    assert "No registered connector 'Nope'" in str(result.error)
    assert "OrdersSource [tests.kafka.connect.test_command.OrdersSource]" in str(result.error)


def test_invalid_connector_is_not_published_and_fails_the_command(
    connect: FakeConnect, register_connector: Callable[[type], type]
) -> None:
    """django-kafka 0.5.13 went on to publish connectors that failed validation, and counted
    an HTTP 200 validation answer with errors as valid."""
    register_connector(InvalidSource)

    result = run("--validate", "--publish", "--check-status", fails=True)

    assert (
        "[validate 3/3] InvalidSource: FAILED: invalid config: file: Missing required" in result.err
    )
    assert "pw-s3cret" not in result.text
    assert sorted(connect.connectors) == ["OrdersSource", "UsersSource"]
    assert connect.calls("GET", "/connectors/InvalidSource/status") == []
    assert str(result.error) == "1 of 3 connector(s) failed: InvalidSource (validate)"
    assert result.error is not None and result.error.returncode == 1


def test_ignore_failures_reports_but_succeeds(
    connect: FakeConnect, register_connector: Callable[[type], type]
) -> None:
    register_connector(InvalidSource)

    result = run("--validate", "--publish", "--ignore-failures")

    assert "InvalidSource: FAILED" in result.err
    assert "1 of 3 connector(s) failed: InvalidSource (validate) (ignored: --ignore-failures)" in (
        result.err
    )
    assert sorted(connect.connectors) == ["OrdersSource", "UsersSource"]


def test_publish_failure_skips_the_status_check(connect: FakeConnect) -> None:
    connect.fail("PUT", "/connectors/OrdersSource/config", status=500)

    result = run("--publish", "--check-status", fails=True)

    assert "[publish 1/2] OrdersSource: FAILED: PUT" in result.err
    assert "HTTP 500: scripted failure 500" in result.err
    assert "[check-status 1/1] UsersSource: RUNNING" in result.out
    assert connect.calls("GET", "/connectors/OrdersSource/status") == []


def test_publish_retries_transient_errors(connect: FakeConnect) -> None:
    connect.fail("PUT", "/connectors/OrdersSource/config", status=503, times=2)

    run("OrdersSource", "--publish")

    assert len(connect.calls("PUT", "/connectors/OrdersSource/config")) == 3
    assert "OrdersSource" in connect.connectors


def test_marked_for_removal_is_deleted_and_confirmed_absent(
    connect: FakeConnect, register_connector: Callable[[type], type]
) -> None:
    register_connector(RetiredSource)
    connect.add("RetiredSource", RetiredSource.config)

    first = run("RetiredSource", "--validate", "--publish", "--check-status")

    assert "[validate 1/1] RetiredSource: skipped (marked for removal)" in first.out
    assert "[publish 1/1] RetiredSource: deleted (marked for removal)" in first.out
    assert "[check-status 1/1] RetiredSource: absent (marked for removal)" in first.out
    assert "RetiredSource" not in connect.connectors
    assert connect.calls("PUT") == []

    second = run("RetiredSource", "--publish")
    assert "already absent (marked for removal)" in second.out


def test_marked_for_removal_still_present_fails_the_status_check(
    connect: FakeConnect, register_connector: Callable[[type], type]
) -> None:
    register_connector(RetiredSource)
    connect.add("RetiredSource", RetiredSource.config)

    result = run("RetiredSource", "--check-status", fails=True)

    assert "still present (RUNNING) although marked for removal" in result.err


def test_check_status_waits_for_a_starting_connector(connect: FakeConnect) -> None:
    connect.script_states(
        "OrdersSource",
        ("UNASSIGNED", []),
        ("RUNNING", []),
        ("RUNNING", ["UNASSIGNED"]),
        ("RUNNING", ["RUNNING"]),
    )

    result = run("OrdersSource", "--publish", "--check-status", "--status-timeout", "10")

    assert "[check-status 1/1] OrdersSource: RUNNING (task 0 RUNNING)" in result.out
    assert len(connect.calls("GET", "/connectors/OrdersSource/status")) == 4
    waiting = [line for line in result.out.splitlines() if "waiting (up to" in line]
    assert [line.split(", waiting")[0] for line in waiting] == [
        "  OrdersSource: UNASSIGNED (no tasks)",
        "  OrdersSource: RUNNING (no tasks)",
        "  OrdersSource: RUNNING (task 0 UNASSIGNED)",
    ]


def test_check_status_fails_on_a_failed_task(connect: FakeConnect) -> None:
    """django-kafka 0.5.13 ignored task states: a RUNNING connector whose task FAILED passed."""
    connect.script_states(
        "OrdersSource",
        ("RUNNING", ["FAILED"]),
        trace="org.apache.kafka.connect.errors.ConnectException: file not found\n\tat Foo",
    )

    result = run("OrdersSource", "--publish", "--check-status", fails=True)

    assert "[check-status 1/1] OrdersSource: FAILED: RUNNING (task 0 FAILED)" in result.err
    assert "ConnectException: file not found" in result.err
    assert "at Foo" not in result.err
    assert str(result.error) == "1 of 1 connector(s) failed: OrdersSource (check-status)"


def test_check_status_fails_on_a_failed_or_paused_connector(connect: FakeConnect) -> None:
    connect.script_states("OrdersSource", ("FAILED", []), trace="boom")
    connect.script_states("UsersSource", ("PAUSED", ["PAUSED"]))

    result = run("--publish", "--check-status", fails=True)

    assert "OrdersSource: FAILED: FAILED (no tasks); boom" in result.err
    assert "UsersSource: FAILED: PAUSED (task 0 PAUSED)" in result.err


def test_check_status_gives_up_at_the_deadline(connect: FakeConnect) -> None:
    connect.script_states("OrdersSource", ("UNASSIGNED", []))

    started = time.monotonic()
    result = run("OrdersSource", "--publish", "--check-status", "--status-timeout", "1", fails=True)

    assert time.monotonic() - started < 5
    assert "still UNASSIGNED (no tasks) after 1s (--status-timeout)" in result.err
    assert len(connect.calls("GET", "/connectors/OrdersSource/status")) >= 2


def test_check_status_of_an_unknown_connector_waits_then_fails(connect: FakeConnect) -> None:
    """django-kafka 0.5.13 retried a 404 three times within about 3 s, whatever the deploy."""
    result = run("OrdersSource", "--check-status", "--status-timeout", "0.5", fails=True)
    assert "still not found after 0.5s" in result.err


def test_running_connector_without_tasks_passes_at_the_deadline(connect: FakeConnect) -> None:
    connect.script_states("OrdersSource", ("RUNNING", []))
    result = run("OrdersSource", "--publish", "--check-status", "--status-timeout", "0.5")
    assert "[check-status 1/1] OrdersSource: RUNNING (no tasks)" in result.out


def test_missing_connect_host_fails_even_with_ignore_failures(
    connect: FakeConnect, connect_settings: Callable[..., Any]
) -> None:
    connect_settings(CONNECT_HOST=None)
    result = run("--publish", "--ignore-failures", fails=True)
    assert "MESSAGING['KAFKA']['CONNECT_HOST'] is not set" in str(result.error)


def test_unreachable_connect_fails_each_connector(
    connect: FakeConnect, connect_settings: Callable[..., Any]
) -> None:
    connect_settings(CONNECT_HOST="http://127.0.0.1:1", CONNECT_RETRY={"connect": 0})
    result = run("--publish", fails=True)
    assert result.err.count("cannot reach Kafka Connect") == 2
    assert "2 of 2 connector(s) failed" in str(result.error)


def test_no_registered_connectors(
    register_connector: Callable[[type], type], connect_settings: Callable[..., Any]
) -> None:
    result = run("--publish")
    assert "No connectors are registered" in result.out


def test_a_broken_connector_class_does_not_stop_the_others(
    connect: FakeConnect, register_connector: Callable[[type], type]
) -> None:
    class BrokenConfig(Connector):
        @property
        def config(self) -> dict[str, Any]:
            raise KeyError("ORDERS_DB_HOST")

    register_connector(BrokenConfig)

    result = run("--validate", "--publish", fails=True)

    assert "[validate 3/3] BrokenConfig: FAILED: KeyError: 'ORDERS_DB_HOST'" in result.err
    assert sorted(connect.connectors) == ["OrdersSource", "UsersSource"]
    assert str(result.error) == "1 of 3 connector(s) failed: BrokenConfig (validate)"
