"""Settings declarations, system checks, registries and autodiscovery."""

from __future__ import annotations

import socket

import pytest
from django.core import checks
from django.test import override_settings

from django_messaging.kafka import DjangoKafka, kafka
from django_messaging.kafka.conf import settings as kafka_settings
from django_messaging.kafka.exceptions import DjangoKafkaError
from django_messaging.kafka.registry import ConsumersRegistry


def kafka_errors() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks() if "['KAFKA']" in m.msg]


def test_documented_defaults():
    with override_settings(MESSAGING={"KAFKA": {}}):
        assert f"{socket.gethostname()}-python" == kafka_settings.CLIENT_ID
        assert (
            kafka_settings.ERROR_HANDLER
            == "django_messaging.kafka.error_handlers.ClientErrorHandler"
        )
        assert kafka_settings.RETRY_CONSUMER_CONFIG == {
            "auto.offset.reset": "earliest",
            "enable.auto.offset.store": False,
            "topic.metadata.refresh.interval.ms": 10000,
        }
        assert kafka_settings.RETRY_SETTINGS is None
        assert kafka_settings.RETRY_TOPIC_SUFFIX == "retry"
        assert kafka_settings.DEAD_LETTER_TOPIC_SUFFIX == "dlt"
        assert kafka_settings.POLLING_FREQUENCY == 1
        assert kafka_settings.SCHEMA_REGISTRY == {}
        assert kafka_settings.CONNECT_HOST is None
        assert kafka_settings.CONNECT_REQUESTS_TIMEOUT == 30
        assert kafka_settings.CONNECTOR_NAME_PREFIX == ""


def test_checks_report_wrong_types_typos_and_bad_retry_settings():
    with override_settings(
        MESSAGING={
            "KAFKA": {
                "POLLING_FREQUENCY": "1",
                "POLLING_FREQENCY": 1,
                "RETRY_SETTINGS": {"max_retries": -5, "delay": 1},
                "GLOBAL_CONFIG": {"sasl.password": "hunter2"},
            }
        }
    ):
        found = {(m.id, m.msg.split(" ")[0]) for m in kafka_errors()}
        hints = " ".join(str(m.hint) for m in kafka_errors())
        text = " ".join(m.msg for m in kafka_errors())
    assert ("messaging.E005", "MESSAGING['KAFKA']['POLLING_FREQUENCY']") in found
    assert ("messaging.E004", "MESSAGING['KAFKA']['POLLING_FREQENCY']") in found
    assert ("messaging.E006", "MESSAGING['KAFKA']['RETRY_SETTINGS']:") in found
    assert "POLLING_FREQUENCY" in hints
    assert "hunter2" not in text


def test_valid_settings_pass_the_checks():
    with override_settings(
        MESSAGING={
            "KAFKA": {
                "CLIENT_ID": "x",
                "RETRY_SETTINGS": {"max_retries": -1, "delay": 10},
                "POLLING_FREQUENCY": 0.5,
                "CONNECT_HOST": "http://connect:8083",
            }
        }
    ):
        assert kafka_errors() == []


class OtherErrorHandler:
    def __call__(self, error):
        pass


@pytest.mark.parametrize("legacy", [False, True])
def test_an_error_handler_path_that_cannot_be_imported_is_e008(legacy):
    values = {"ERROR_HANDLER": "django_messaging.kafka.error_handlers.NoSuchHandler"}
    overrides = (
        {"MESSAGING": {}, "DJANGO_KAFKA": values} if legacy else {"MESSAGING": {"KAFKA": values}}
    )
    where = "DJANGO_KAFKA['ERROR_HANDLER']" if legacy else "MESSAGING['KAFKA']['ERROR_HANDLER']"
    with override_settings(**overrides):
        errors = [m for m in checks.run_checks() if m.id == "messaging.E008"]
    assert [m.msg.split(" ")[0] for m in errors] == [where]
    assert "NoSuchHandler" in errors[0].msg


def test_the_error_handler_follows_a_settings_change():
    from django_messaging.kafka.config import error_handler
    from django_messaging.kafka.error_handlers import ClientErrorHandler

    assert type(error_handler()) is ClientErrorHandler
    producer = kafka.producer
    with override_settings(MESSAGING={"KAFKA": {"ERROR_HANDLER": f"{__name__}.OtherErrorHandler"}}):
        assert type(error_handler()) is OtherErrorHandler
        assert kafka.producer is not producer  # rebuilt with the new error_cb
    assert type(error_handler()) is ClientErrorHandler


def test_consumers_of_installed_apps_are_autodiscovered():
    import sys

    assert "tests.project.kafka_app.consumers.FileConsumer" in kafka.consumers
    assert "tests.project.kafka_app.kafka.consumers.NestedFileConsumer" in kafka.consumers
    assert "ProjectFileSource" in kafka.connectors
    assert sys.modules["tests.project.kafka_app.kafka.connectors"].IMPORTED
    with pytest.raises(DjangoKafkaError, match="is not registered"):
        kafka.consumers["nope"]


def test_duplicate_registration_raises():
    registry = ConsumersRegistry()
    from django_messaging.kafka.consumer import Consumer, Topics

    cls = type("C", (Consumer,), {"topics": Topics(), "__module__": "m"})
    registry.register(cls)
    with pytest.raises(DjangoKafkaError, match="already registered"):
        registry.register(cls)


def test_run_consumers_without_consumers_returns(monkeypatch):
    """django-kafka #36: an empty registry raised ``Number of processes must be at least 1``."""
    empty = DjangoKafka()
    monkeypatch.setattr(empty, "consumers", ConsumersRegistry())
    assert empty.run_consumers() == 0


def test_registry_decorator_works_with_and_without_parentheses():
    """django-kafka: ``@kafka.consumers`` without parentheses silently registered nothing."""
    from django_messaging.kafka.consumer import Consumer, Topics

    registry = ConsumersRegistry()
    first = registry()(type("First", (Consumer,), {"topics": Topics(), "__module__": "m"}))
    second = registry(type("Second", (Consumer,), {"topics": Topics(), "__module__": "m"}))
    assert list(registry) == ["m.First", "m.Second"]
    assert registry["m.Second"] is second and registry["m.First"] is first
