"""``factory_producer`` / ``send_event``, connection settings and failover."""

from __future__ import annotations

import json

import pytest
import stomp

from django_messaging.outbox.exceptions import ExceededSendAttemptsException
from django_messaging.outbox.factories import factory_connection, factory_producer
from tests.helpers import wait_until
from tests.outbox.helpers import outbox_settings, topic

pytestmark = pytest.mark.timeout(60)


def test_send_event_delivers_body_and_headers(stomp_address, probe, unique_name) -> None:
    destination, _ = topic(unique_name)
    p = probe(destination)
    with factory_producer() as producer:
        attempts = producer.send_event(
            destination=destination, body={"some": "data"}, headers={"x-trace": "t1"}
        )
    assert attempts == 0
    wait_until(lambda: p.messages)
    headers, body = p.messages[0]
    assert json.loads(body) == {"some": "data"}
    assert headers["x-trace"] == "t1" and headers["dop-msg-id"]
    assert headers["persistent"] == "true"


def test_failover_to_the_next_host(stomp_address, probe, unique_name) -> None:
    destination, _ = topic(unique_name)
    p = probe(destination)
    hosts = [("127.0.0.1", 1), stomp_address]
    with outbox_settings(DEFAULT_STOMP_HOST_AND_PORTS=hosts), factory_producer() as producer:
        producer.send_event(destination=destination, body={"n": 1})
    wait_until(lambda: p.messages)


def test_unreachable_broker_raises_after_the_configured_attempts() -> None:
    """django-outbox-pattern 0.9.0: ``ExceededSendAttemptsException`` had an empty message."""
    with outbox_settings(
        DEFAULT_STOMP_HOST_AND_PORTS=[("127.0.0.1", 1)], DEFAULT_MAXIMUM_RETRY_ATTEMPTS=2
    ):
        producer = factory_producer()
        with pytest.raises(ExceededSendAttemptsException) as info:
            producer.send_event(destination="/topic/x", body={})
    assert info.value.attempts == 2
    assert "gave up after 2 failed send attempts" in str(info.value)


def test_wrong_credentials_are_reported(stomp_address) -> None:
    wrong = outbox_settings(DEFAULT_STOMP_PASSCODE="wrong", DEFAULT_MAXIMUM_RETRY_ATTEMPTS=1)
    with wrong, pytest.raises(ExceededSendAttemptsException):
        factory_producer().send_event(destination="/topic/x", body={})


def test_unknown_vhost_is_refused(stomp_address) -> None:
    vhost = outbox_settings(DEFAULT_STOMP_VHOST="no-such-vhost", DEFAULT_MAXIMUM_RETRY_ATTEMPTS=1)
    with vhost, pytest.raises(ExceededSendAttemptsException):
        factory_producer().send_event(destination="/topic/x", body={})


def test_connection_class_heartbeats_and_vhost_come_from_settings() -> None:
    with outbox_settings(
        DEFAULT_CONNECTION_CLASS="stomp.StompConnection11",
        DEFAULT_STOMP_HEARTBEATS=(1500, 2500),
        DEFAULT_STOMP_VHOST="/v",
    ):
        connection = factory_connection()
    assert isinstance(connection, stomp.StompConnection11)
    assert connection.heartbeats == (1500, 2500)
    assert connection.transport.vhost == "/v"


def test_ssl_options_are_passed_to_stomp(tmp_path) -> None:
    """No TLS broker runs here, so this checks what reaches stomp.py's transport."""
    import ssl

    def validator(cert, hostname):
        return True, None

    with outbox_settings(
        DEFAULT_STOMP_HOST_AND_PORTS=[("broker.example", 61614)],
        DEFAULT_STOMP_USE_SSL=True,
        DEFAULT_STOMP_KEY_FILE="/k.pem",
        DEFAULT_STOMP_CERT_FILE="/c.pem",
        DEFAULT_STOMP_CA_CERTS="/ca.pem",
        DEFAULT_STOMP_CERT_VALIDATOR=validator,
        DEFAULT_STOMP_SSL_VERSION=ssl.PROTOCOL_TLS_CLIENT,
        DEFAULT_STOMP_SSL_PASSWORD="secret",
    ):
        connection = factory_connection()
    params = connection.transport._Transport__ssl_params[("broker.example", 61614)]
    assert params["key_file"] == "/k.pem" and params["cert_file"] == "/c.pem"
    assert params["ca_certs"] == "/ca.pem" and params["cert_validator"] is validator
    assert params["ssl_version"] == ssl.PROTOCOL_TLS_CLIENT and params["password"] == "secret"
