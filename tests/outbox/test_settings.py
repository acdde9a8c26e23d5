"""Settings: declared keys, system checks, live reads, the legacy dict, pluggable classes."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from django_messaging.core.checks import check_messaging_settings
from django_messaging.outbox.conf import settings as outbox_settings
from django_messaging.outbox.consumers import Consumer
from django_messaging.outbox.headers import generate_headers
from django_messaging.outbox.listeners import ConsumerListener, ProducerListener
from django_messaging.outbox.models import Published
from django_messaging.outbox.producers import message_headers
from django_messaging.outbox.transports.stomp import StompTransport

DOCUMENTED = {
    "DEFAULT_CONNECTION_CLASS": "stomp.StompConnection12",
    "DEFAULT_CONSUMER_LISTENER_CLASS": "django_messaging.outbox.listeners.ConsumerListener",
    "DEFAULT_GENERATE_HEADERS": "django_messaging.outbox.headers.generate_headers",
    "DEFAULT_MAXIMUM_BACKOFF": 3600,
    "DEFAULT_MAXIMUM_RETRY_ATTEMPTS": 50,
    "DEFAULT_PAUSE_FOR_RETRY": 240,
    "DEFAULT_WAIT_RETRY": 60,
    "DEFAULT_PRODUCER_LISTENER_CLASS": "django_messaging.outbox.listeners.ProducerListener",
    "DEFAULT_STOMP_HOST_AND_PORTS": [("127.0.0.1", 61613)],
    "DEFAULT_STOMP_QUEUE_HEADERS": {
        "durable": "true",
        "auto-delete": "false",
        "prefetch-count": "1",
    },
    "DEFAULT_STOMP_HEARTBEATS": (10000, 10000),
    "DEFAULT_STOMP_VHOST": "/",
    "DEFAULT_STOMP_USERNAME": "guest",
    "DEFAULT_STOMP_PASSCODE": "guest",
    "DEFAULT_STOMP_USE_SSL": False,
    "DEFAULT_STOMP_KEY_FILE": None,
    "DEFAULT_STOMP_CERT_FILE": None,
    "DEFAULT_STOMP_CA_CERTS": None,
    "DEFAULT_STOMP_CERT_VALIDATOR": None,
    "DEFAULT_STOMP_SSL_VERSION": None,
    "DEFAULT_STOMP_SSL_PASSWORD": None,
}


def outbox(**values):
    return {**settings.MESSAGING, "OUTBOX": values}


def test_documented_defaults() -> None:
    with override_settings(MESSAGING={}):
        for key, value in DOCUMENTED.items():
            assert outbox_settings.get(key) == value, key


def test_wrong_types_and_typos_fail_the_checks() -> None:
    with override_settings(
        MESSAGING=outbox(
            DEFAULT_MAXIMUM_RETRY_ATTEMPTS="50",
            DEFAULT_STOMP_HOST_AND_PORTS=[("host", "61613")],
            DEFAULT_STOMP_HEARTBEAT=(1, 1),
            DEFAULT_STOMP_PASSCODE=123,
        )
    ):
        errors = [e for e in check_messaging_settings() if "OUTBOX" in e.msg]
    text = "\n".join(f"{e.id} {e.msg} {e.hint}" for e in errors)
    assert "messaging.E005" in text and "DEFAULT_MAXIMUM_RETRY_ATTEMPTS" in text
    assert "messaging.E006" in text and "(host, port)" in text
    assert "Did you mean 'DEFAULT_STOMP_HEARTBEATS'" in text
    assert "123" not in text  # a secret is never shown


def test_legacy_setting_is_read_and_values_are_live() -> None:
    """django-outbox-pattern captured several settings at import time (0.9.0) or all of them
    (0.13.1+), so ``override_settings`` had no effect."""
    with override_settings(MESSAGING={}, DJANGO_OUTBOX_PATTERN={"DEFAULT_WAIT_RETRY": 5}):
        assert outbox_settings.DEFAULT_WAIT_RETRY == 5
    with override_settings(MESSAGING=outbox(DEFAULT_WAIT_RETRY=7)):
        assert outbox_settings.DEFAULT_WAIT_RETRY == 7


def test_a_connection_class_that_cannot_be_imported_fails_the_check_e008() -> None:
    with override_settings(MESSAGING=outbox(DEFAULT_CONNECTION_CLASS="stomp.NoSuchConnection")):
        errors = [e for e in check_messaging_settings() if e.id == "messaging.E008"]
    assert len(errors) == 1
    assert "MESSAGING['OUTBOX']['DEFAULT_CONNECTION_CLASS']" in errors[0].msg
    assert "stomp.NoSuchConnection" in errors[0].msg


def other_headers(message):
    return {**generate_headers(message), "x-tenant": "other"}


def test_an_imported_setting_follows_a_live_change() -> None:
    """Dotted paths are imported once and cached; a settings change drops the cache."""
    row = Published(destination="/topic/h", body={})
    for name, tenant in [("custom_headers", "acme"), ("other_headers", "other")]:
        path = f"tests.outbox.test_settings.{name}"
        with override_settings(MESSAGING=outbox(DEFAULT_GENERATE_HEADERS=path)):
            assert message_headers(row)["x-tenant"] == tenant
            assert outbox_settings.imported("DEFAULT_GENERATE_HEADERS") is globals()[name]


def custom_headers(message):
    return {**generate_headers(message), "x-tenant": "acme"}


class CountingListener(ProducerListener):
    receipts = 0

    def on_receipt(self, frame):
        CountingListener.receipts += 1
        super().on_receipt(frame)


def test_generate_headers_setting_and_stored_headers() -> None:
    row = Published(destination="/topic/h", body={}, headers={"x-stored": "1", "dop-msg-id": "no"})
    with override_settings(
        MESSAGING=outbox(DEFAULT_GENERATE_HEADERS="tests.outbox.test_settings.custom_headers")
    ):
        headers = message_headers(row)
    assert headers["x-tenant"] == "acme" and headers["x-stored"] == "1"
    assert headers["dop-msg-id"] == str(row.id)  # generated headers win


def test_producer_listener_class_setting(stomp_address) -> None:
    with override_settings(
        MESSAGING={
            **settings.MESSAGING,
            "OUTBOX": {
                **settings.MESSAGING["OUTBOX"],
                "DEFAULT_PRODUCER_LISTENER_CLASS": "tests.outbox.test_settings.CountingListener",
            },
        }
    ):
        transport = StompTransport()
        transport.open()
        try:
            result = transport.send_batch([_message()], lambda keys: None, timeout=5)
        finally:
            transport.close()
    assert result.confirmed == 1 and CountingListener.receipts >= 1


def _message():
    from django_messaging.outbox.transports.base import OutgoingMessage

    return OutgoingMessage("k", "/topic/listener-check", b"{}", {}, "application/json")


@pytest.mark.parametrize("key", ["DEFAULT_CONSUMER_ID_HEADERS"])
def test_empty_id_header_list_is_rejected(key) -> None:
    with override_settings(MESSAGING=outbox(**{key: []})):
        assert any(e.id == "messaging.E006" for e in check_messaging_settings())


class CountingConsumerListener(ConsumerListener):
    messages = 0

    def on_message(self, frame):
        CountingConsumerListener.messages += 1
        super().on_message(frame)


@pytest.mark.django_db(transaction=True)
def test_consumer_listener_class_setting(stomp_address, unique_name) -> None:
    from tests.outbox import callbacks
    from tests.outbox.helpers import drive
    from tests.outbox.stomp_probe import send_raw

    path = "tests.outbox.test_settings.CountingConsumerListener"
    values = {**settings.MESSAGING["OUTBOX"], "DEFAULT_CONSUMER_LISTENER_CLASS": path}
    with override_settings(MESSAGING={**settings.MESSAGING, "OUTBOX": values}):
        consumer = Consumer(callbacks.store_order, f"/topic/{unique_name('l')}", unique_name("q"))
        consumer.start()
        try:
            send_raw(stomp_address, consumer.destination, '{"number": "L"}', {"dop-msg-id": "l1"})
            drive(consumer, lambda: consumer.handled == 1)
        finally:
            consumer.stop()
    assert CountingConsumerListener.messages == 1
