"""``KafkaConnectClient`` against a local Connect REST API: endpoints, retries, timeouts, auth."""

from __future__ import annotations

import socket
import time

import pytest
from requests.auth import HTTPBasicAuth

from django_messaging.kafka.connect.client import KafkaConnectClient, KafkaConnectError
from django_messaging.kafka.exceptions import DjangoKafkaError
from tests.kafka.connect.conftest import FAST_RETRY
from tests.kafka.connect.connect_server import FakeConnect

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
CONFIG = {"connector.class": FILE_SOURCE, "file": "/tmp/in.txt", "topic": "lines"}


def client_for(server: FakeConnect, **kwargs: object) -> KafkaConnectClient:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeout", 5)
    return KafkaConnectClient(server.url, **kwargs)  # type: ignore[arg-type]


def test_create_update_list_status_delete(connect_server: FakeConnect) -> None:
    client = client_for(connect_server)

    created = client.update_or_create("lines-source", {**CONFIG, "name": "lines-source"})
    assert created.status_code == 201
    updated = client.update_or_create("lines-source", {**CONFIG, "topic": "lines-2"})
    assert updated.status_code == 200
    assert connect_server.connectors["lines-source"].config["topic"] == "lines-2"
    assert client.list_connectors() == ["lines-source"]

    status = client.connector_status("lines-source")
    assert status is not None
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]

    assert client.delete("lines-source") is True
    assert client.delete("lines-source") is False
    assert client.connector_status("lines-source") is None
    assert client.list_connectors() == []
    assert [(r.method, r.path) for r in connect_server.requests][:2] == [
        ("PUT", "/connectors/lines-source/config"),
        ("PUT", "/connectors/lines-source/config"),
    ]


def test_validate_uses_the_plugin_endpoint_and_returns_the_report(
    connect_server: FakeConnect,
) -> None:
    client = client_for(connect_server)

    report = client.validate({**CONFIG, "name": "x"})
    assert report["error_count"] == 0
    bad = client.validate({"connector.class": FILE_SOURCE, "name": "x"})
    assert bad["error_count"] == 2

    paths = [r.path for r in connect_server.calls("PUT")]
    assert paths == [f"/connector-plugins/{FILE_SOURCE}/config/validate"] * 2
    with pytest.raises(KafkaConnectError, match=r"no 'connector\.class'"):
        client.validate({"file": "x"})


def test_names_are_quoted_in_paths(connect_server: FakeConnect) -> None:
    client = client_for(connect_server)
    client.update_or_create("team a/orders", CONFIG)
    assert connect_server.requests[-1].path == "/connectors/team%20a%2Forders/config"
    assert "team a/orders" in connect_server.connectors


def test_server_errors_are_retried_then_succeed(connect_server: FakeConnect) -> None:
    connect_server.fail("PUT", "/connectors/flaky/config", status=503, times=2)
    client = client_for(connect_server)

    response = client.update_or_create("flaky", CONFIG)

    assert response.status_code == 201
    assert len(connect_server.calls("PUT", "/connectors/flaky/config")) == 3


def test_retries_exhausted_raise_a_clear_error(connect_server: FakeConnect) -> None:
    connect_server.fail("GET", "/connectors", status=502, times=50)
    client = client_for(connect_server)

    with pytest.raises(KafkaConnectError) as info:
        client.list_connectors()

    text = str(info.value)
    assert "GET" in text and "/connectors" in text and "CONNECT_RETRY" in text
    # the first try and FAST_RETRY["status"] retries
    assert len(connect_server.calls("GET", "/connectors")) == 1 + FAST_RETRY["status"]


def test_status_not_in_the_retry_list_fails_at_once_with_connects_message(
    connect_server: FakeConnect,
) -> None:
    connect_server.fail(
        "PUT",
        "/connectors/busy/config",
        status=409,
        body={"error_code": 409, "message": "Cannot complete request momentarily due to rebalance"},
    )
    client = client_for(connect_server)

    with pytest.raises(KafkaConnectError, match="HTTP 409: Cannot complete request") as info:
        client.update_or_create("busy", CONFIG)

    assert info.value.status_code == 409
    assert len(connect_server.calls("PUT")) == 1


def test_slow_answer_times_out_within_the_configured_timeout(connect_server: FakeConnect) -> None:
    connect_server.fail("GET", "/connectors", status=0, delay=2.0, times=5)
    client = client_for(connect_server, timeout=0.3, retry={"read": 0, "connect": 0, "status": 0})

    started = time.monotonic()
    with pytest.raises(KafkaConnectError, match=r"no answer within 0\.3s"):
        client.list_connectors()

    assert time.monotonic() - started < 1.5


def test_a_read_timeout_is_retried(connect_server: FakeConnect) -> None:
    connect_server.fail("GET", "/connectors/slow/status", status=0, delay=1.0, times=1)
    connect_server.add("slow", CONFIG)
    client = client_for(connect_server, timeout=0.3, retry={"read": 1, "backoff_factor": 0})

    status = client.connector_status("slow")

    assert status is not None and status["connector"]["state"] == "RUNNING"
    assert len(connect_server.calls("GET", "/connectors/slow/status")) == 2


def test_unreachable_connect_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = KafkaConnectClient(f"http://127.0.0.1:{port}", retry={"connect": 0}, timeout=2)

    with pytest.raises(KafkaConnectError, match=r"cannot reach Kafka Connect.*CONNECT_HOST"):
        client.list_connectors()


def test_basic_auth_from_a_pair_or_an_auth_object() -> None:
    server = FakeConnect(auth=("deployer", "s3cret-pw")).start()
    try:
        assert client_for(server, auth=("deployer", "s3cret-pw")).list_connectors() == []
        assert client_for(server, auth=["deployer", "s3cret-pw"]).list_connectors() == []
        assert (
            client_for(server, auth=HTTPBasicAuth("deployer", "s3cret-pw")).list_connectors() == []
        )

        def signs(request):  # any callable, as requests takes it
            return HTTPBasicAuth("deployer", "s3cret-pw")(request)

        assert client_for(server, auth=signs).list_connectors() == []
        for wrong in ("deployer:s3cret-pw", HTTPBasicAuth, 3):
            with pytest.raises(DjangoKafkaError, match="CONNECT_AUTH must be"):
                client_for(server, auth=wrong)

        with pytest.raises(KafkaConnectError) as info:
            client_for(server, auth=("deployer", "wrong-pw")).list_connectors()
        assert info.value.status_code == 401
        assert "CONNECT_AUTH" in str(info.value)
        assert "wrong-pw" not in str(info.value)
    finally:
        server.stop()


def test_credentials_in_the_host_url_never_show(connect_server: FakeConnect) -> None:
    host = connect_server.url.replace("http://", "http://deployer:url-s3cret@")
    connect_server.fail("GET", "/connectors", status=500, times=1)
    client = KafkaConnectClient(host, retry={"status": 0}, timeout=5)

    with pytest.raises(KafkaConnectError) as info:
        client.list_connectors()

    assert "url-s3cret" not in str(info.value)
    assert "url-s3cret" not in repr(client)
    assert "url-s3cret" not in repr(client._session)
    # the password in the URL is still used for the request
    assert connect_server.requests[-1].authorization is not None


def test_unreachable_host_with_credentials_does_not_leak_them() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = KafkaConnectClient(
        f"http://deployer:url-s3cret@127.0.0.1:{port}", retry={"connect": 0}, timeout=2
    )
    with pytest.raises(KafkaConnectError) as info:
        client.list_connectors()
    assert "url-s3cret" not in str(info.value)
