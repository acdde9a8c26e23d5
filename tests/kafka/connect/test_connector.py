"""``Connector``: names, config, submit/validate/delete/status against a local Connect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from django_messaging.core.checks import check_messaging_settings
from django_messaging.kafka import kafka
from django_messaging.kafka.connect.client import KafkaConnectError
from django_messaging.kafka.connect.connector import Connector, ConnectorStatus
from django_messaging.kafka.exceptions import DjangoKafkaError
from tests.kafka.connect.connect_server import FakeConnect

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"


class LinesSource(Connector):
    config = {"connector.class": FILE_SOURCE, "file": "/tmp/lines.txt", "topic": "lines"}


class NamedSource(Connector):
    name = "orders-source"
    config = {"connector.class": FILE_SOURCE, "file": "/tmp/orders.txt", "topic": "orders"}


class BrokenSource(Connector):
    config = {
        "connector.class": FILE_SOURCE,
        "tasks.max": "many",
        "database.password": "hunter2-secret",
    }


def test_name_is_the_class_name_with_the_live_prefix(connect_settings: Callable[..., Any]) -> None:
    assert LinesSource.name == "LinesSource"
    assert LinesSource().name == "LinesSource"
    assert NamedSource.name == "orders-source"

    connect_settings(CONNECTOR_NAME_PREFIX="acme")

    assert LinesSource.name == "acme.LinesSource"
    assert NamedSource.name == "acme.orders-source"


def test_subclass_of_a_connector_gets_its_own_name() -> None:
    class LinesSourceEu(LinesSource):
        pass

    assert LinesSourceEu.name == "LinesSourceEu"
    assert LinesSource.name == "LinesSource"


def test_registration_is_keyed_by_connector_name(
    register_connector: Callable[[type], type],
) -> None:
    register_connector(LinesSource)
    assert kafka.connectors["LinesSource"] is LinesSource
    with pytest.raises(DjangoKafkaError, match="already registered"):
        kafka.connectors.register(LinesSource)


def test_decorator_registers_and_returns_the_class(
    register_connector: Callable[[type], type],
) -> None:
    @kafka.connectors()
    class DecoratedSource(Connector):
        config = {"connector.class": FILE_SOURCE}

    assert kafka.connectors["DecoratedSource"] is DecoratedSource
    assert list(kafka.connectors) == ["DecoratedSource"]


def test_config_sent_carries_the_connector_name(connect_settings: Callable[..., Any]) -> None:
    connect_settings(CONNECTOR_NAME_PREFIX="acme")
    assert LinesSource().get_config() == {**LinesSource.config, "name": "acme.LinesSource"}

    class Mismatch(Connector):
        config = {"connector.class": FILE_SOURCE, "name": "other"}

    with pytest.raises(DjangoKafkaError, match="'other' but the connector is named"):
        Mismatch().get_config()

    class NoConfig(Connector):
        pass

    with pytest.raises(DjangoKafkaError, match="config must be a dict"):
        NoConfig().get_config()


def test_submit_creates_then_updates(
    connect_settings: Callable[..., Any], connect_server: FakeConnect
) -> None:
    connect_settings(CONNECTOR_NAME_PREFIX="acme")
    connector = LinesSource()

    assert connector.create_or_update() is True
    assert connector.create_or_update() is False
    assert connect_server.connectors["acme.LinesSource"].config["name"] == "acme.LinesSource"
    assert [r.path for r in connect_server.calls("PUT")] == [
        "/connectors/acme.LinesSource/config"
    ] * 2


def test_submit_returns_connects_answer(
    connect_settings: Callable[..., Any], connect_server: FakeConnect
) -> None:
    """django-kafka's ``Connector.submit()`` returns the JSON Connect answers the PUT with."""
    connect_settings(CONNECTOR_NAME_PREFIX="acme")

    info = LinesSource().submit()

    assert info["name"] == "acme.LinesSource"
    assert info["config"] == {**LinesSource.config, "name": "acme.LinesSource"}
    assert info["tasks"] == [] and info["type"] == "source"


def test_validate_reads_error_count_not_http_status(
    connect_settings: Callable[..., Any], connect_server: FakeConnect
) -> None:
    """django-kafka 0.5.13 treated any HTTP 200 from the validate endpoint as valid; Connect
    answers 200 with ``error_count > 0`` for invalid configs."""
    assert LinesSource().is_valid() is True

    result = BrokenSource().validate()

    assert result.valid is False
    assert set(result.errors) == {"file", "topic", "tasks.max"}
    assert BrokenSource().is_valid() is False
    with pytest.raises(DjangoKafkaError, match=r"invalid config: .*file: Missing required") as info:
        BrokenSource().is_valid(raise_exception=True)
    assert "hunter2-secret" not in str(info.value)


def test_delete_reports_whether_the_connector_existed(
    connect_settings: Callable[..., Any], connect_server: FakeConnect
) -> None:
    connector = LinesSource()
    connector.submit()

    assert connector.delete() is True
    assert connector.delete() is False
    assert "LinesSource" not in connect_server.connectors


def test_status_reports_connector_and_task_states(
    connect_settings: Callable[..., Any], connect_server: FakeConnect
) -> None:
    connector = LinesSource()
    assert connector.status() is None
    assert connector.state() is None

    connector.submit()
    assert connector.status() == ConnectorStatus.RUNNING

    connect_server.script_states(
        "LinesSource",
        ("RUNNING", ["RUNNING", "FAILED"]),
        trace="java.lang.OutOfMemoryError\n\tat x",
    )
    state = connector.state()
    assert state is not None
    assert state.state == ConnectorStatus.RUNNING
    assert [t.state for t in state.tasks] == [ConnectorStatus.RUNNING, ConnectorStatus.FAILED]
    assert state.healthy is False
    assert "task 1: java.lang.OutOfMemoryError" in state.describe()
    assert "\tat x" not in state.describe()


def test_connector_without_connect_host_says_which_setting(
    connect_settings: Callable[..., Any],
) -> None:
    connect_settings(CONNECT_HOST=None)
    with pytest.raises(
        DjangoKafkaError, match=r"MESSAGING\['KAFKA'\]\['CONNECT_HOST'\] is not set"
    ):
        LinesSource().submit()


def test_connect_settings_come_from_messaging_kafka(
    connect_settings: Callable[..., Any], connect_server: FakeConnect
) -> None:
    connect_settings(CONNECT_REQUESTS_TIMEOUT=7, CONNECT_AUTH=("deployer", "pw"))
    client = LinesSource().client
    assert client.timeout == 7.0
    assert client._session.auth == ("deployer", "pw")
    assert client.host == connect_server.url


def test_documented_defaults() -> None:
    from django_messaging.kafka.conf import settings

    assert settings.CONNECT_HOST is None
    assert settings.CONNECT_AUTH is None
    assert settings.CONNECT_RETRY == {
        "connect": 5,
        "read": 5,
        "status": 5,
        "backoff_factor": 0.5,
        "status_forcelist": [502, 503, 504],
    }
    assert settings.CONNECT_REQUESTS_TIMEOUT == 30
    assert settings.CONNECTOR_NAME_PREFIX == ""


def _connect_errors() -> list[str]:
    return [f"{m.id} {m.msg}" for m in check_messaging_settings() if "CONNECT" in m.msg]


def test_system_checks_report_wrong_connect_settings(settings: Any) -> None:
    settings.MESSAGING = {
        "KAFKA": {
            "CONNECT_HOST": "connect:8083",
            "CONNECT_AUTH": ("deployer", "pw", "extra-s3cret"),
            "CONNECT_RETRY": {"connects": 5},
            "CONNECT_REQUESTS_TIMEOUT": -1,
            "CONNECTOR_NAME_PREFIX": 3,
        }
    }
    errors = _connect_errors()
    text = "\n".join(errors)
    assert "messaging.E006 MESSAGING['KAFKA']['CONNECT_HOST']: must be the base URL" in text
    assert "['CONNECT_AUTH']: must be a requests auth object" in text
    assert "['CONNECT_RETRY']: is not a valid set of urllib3 Retry arguments" in text
    assert "['CONNECT_REQUESTS_TIMEOUT']: must be a positive number" in text
    assert "messaging.E005 MESSAGING['KAFKA']['CONNECTOR_NAME_PREFIX'] must be str" in text
    assert "extra-s3cret" not in text
    assert len(errors) == 5

    settings.MESSAGING = {"KAFKA": {"CONNECT_AUTH": "deployer:pw-s3cret"}}
    text = "\n".join(_connect_errors())
    assert "messaging.E005" in text and "pw-s3cret" not in text

    # Besides a pair, what requests calls with each request: an AuthBase, or any callable.
    for auth in (HTTPBasicAuth("deployer", "pw"), HTTPDigestAuth("d", "pw"), lambda r: r):
        settings.MESSAGING = {"KAFKA": {"CONNECT_AUTH": auth}}
        assert _connect_errors() == []
    for auth in (b"deployer:pw", 3, object()):
        settings.MESSAGING = {"KAFKA": {"CONNECT_AUTH": auth}}
        assert "messaging.E005" in "\n".join(_connect_errors()), auth
    settings.MESSAGING = {"KAFKA": {"CONNECT_AUTH": HTTPBasicAuth}}  # the class, not an instance
    assert "['CONNECT_AUTH']: must be a requests auth object (an instance)" in "\n".join(
        _connect_errors()
    )

    settings.MESSAGING = {
        "KAFKA": {
            "CONNECT_HOST": "https://connect.example:8083/base",
            "CONNECT_AUTH": ("deployer", "pw"),
            "CONNECT_RETRY": {"total": 3, "backoff_factor": 1},
            "CONNECT_REQUESTS_TIMEOUT": (3.05, 27),
            "CONNECTOR_NAME_PREFIX": "acme",
        }
    }
    assert _connect_errors() == []


def test_errors_are_kafka_connect_errors(
    connect_settings: Callable[..., Any], connect_server: FakeConnect
) -> None:
    connect_server.fail("PUT", "/connectors/LinesSource/config", status=500)
    with pytest.raises(KafkaConnectError) as info:
        LinesSource().submit()
    assert isinstance(info.value, DjangoKafkaError)
    assert info.value.status_code == 500


def test_config_can_be_a_property(
    connect_settings: Callable[..., Any], connect_server: FakeConnect, settings: Any
) -> None:
    class FromSettings(Connector):
        @property
        def config(self) -> dict[str, Any]:
            return {
                "connector.class": FILE_SOURCE,
                "file": f"/data/{settings.TIME_ZONE}.txt",
                "topic": "tz",
            }

    assert FromSettings().create_or_update() is True
    assert connect_server.connectors["FromSettings"].config["file"] == "/data/Asia/Kolkata.txt"


def test_connector_status_knows_every_connect_state() -> None:
    """django-kafka 0.5.13's ``ConnectorStatus`` had no ``FAILED`` member."""
    assert {s.value for s in ConnectorStatus} == {
        "UNASSIGNED",
        "RUNNING",
        "PAUSED",
        "FAILED",
        "RESTARTING",
        "STOPPED",
    }


def test_legacy_django_kafka_setting_is_read(settings: Any, connect_server: FakeConnect) -> None:
    settings.MESSAGING = {}
    settings.DJANGO_KAFKA = {"CONNECT_HOST": connect_server.url, "CONNECTOR_NAME_PREFIX": "old"}

    assert LinesSource.name == "old.LinesSource"
    assert LinesSource().create_or_update() is True
    assert "old.LinesSource" in connect_server.connectors
