from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_messaging.core.checks import check_messaging_settings
from django_messaging.core.settings import _SECTIONS, KNOWN_SECTIONS, Section, Setting


@pytest.fixture(autouse=True)
def demo_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KNOWN_SECTIONS, "DEMO", "django_messaging.core")
    Section(
        "DEMO",
        "django_messaging.core",
        {
            "TIMEOUT": Setting(5, int),
            "PASSWORD": Setting(None, str, secret=True),
            "URL": Setting("amqp://localhost", str),
            "MODE": Setting(
                "a", str, validate=lambda v: None if v in "ab" else "must be 'a' or 'b'"
            ),
            "NESTED": Setting(None, dict, children={"queue": Setting("q", str)}),
            "HANDLER": Setting(None, str, imports=True),
        },
        legacy="DEMO_LEGACY",
    )
    yield
    _SECTIONS.pop("DEMO", None)


def ids(messages: list) -> list[str]:
    return [m.id for m in messages]


def run(messaging: object) -> list:
    with override_settings(MESSAGING=messaging):
        return [
            m for m in check_messaging_settings() if "DEMO" in m.msg or m.msg[:9] == "MESSAGING"
        ]


def test_valid_settings_pass() -> None:
    assert run({"DEMO": {"TIMEOUT": 3, "NESTED": {"queue": "x"}}}) == []


def test_messaging_must_be_a_dict() -> None:
    with override_settings(MESSAGING=["KAFKA"]):
        assert ids(check_messaging_settings()) == ["messaging.E001"]


def test_unknown_section_gets_a_did_you_mean_hint() -> None:
    with override_settings(MESSAGING={"KAFAK": {}}):
        (message,) = check_messaging_settings()
    assert message.id == "messaging.E002"
    assert "Did you mean 'KAFKA'?" in message.hint


def test_section_must_be_a_dict() -> None:
    assert ids(run({"DEMO": "yes"})) == ["messaging.E003"]


def test_unknown_key_gets_a_did_you_mean_hint() -> None:
    (message,) = run({"DEMO": {"TIMOUT": 3}})
    assert message.id == "messaging.E004"
    assert "Did you mean 'TIMEOUT'?" in message.hint


def test_unknown_nested_key_is_reported_with_its_path() -> None:
    (message,) = run({"DEMO": {"NESTED": {"queu": "x"}}})
    assert message.id == "messaging.E004"
    assert "['NESTED']['queu']" in message.msg


def test_wrong_type_names_the_expected_type() -> None:
    (message,) = run({"DEMO": {"TIMEOUT": "3"}})
    assert message.id == "messaging.E005"
    assert "must be int, got str" in message.msg


def test_bool_is_not_accepted_as_int() -> None:
    assert ids(run({"DEMO": {"TIMEOUT": True}})) == ["messaging.E005"]


def test_validator_reports_bad_values() -> None:
    (message,) = run({"DEMO": {"MODE": "z"}})
    assert message.id == "messaging.E006"
    assert "must be 'a' or 'b'" in message.msg


def test_secrets_are_never_printed() -> None:
    messages = run({"DEMO": {"PASSWORD": 12345678, "URL": 1}})
    text = " ".join(m.msg + str(m.hint) for m in messages)
    assert ids(messages) == ["messaging.E005", "messaging.E005"]
    assert "12345678" not in text


def test_secret_in_url_is_masked() -> None:
    (message,) = run({"DEMO": {"TIMEOUT": "amqp://user:hunter2@host/"}})
    assert "hunter2" not in message.msg
    assert "user:********@host" in message.msg


def test_unknown_serializer_path_is_an_error() -> None:
    with override_settings(MESSAGING={"SERIALIZERS": {"yaml": "no.such.module.Yaml"}}):
        (message,) = check_messaging_settings()
    assert message.id == "messaging.E007"
    assert "no.such.module.Yaml" in message.msg


def test_section_of_app_not_installed_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KNOWN_SECTIONS, "DEMO", "not.installed.app")
    (message,) = run({"DEMO": {}})
    assert message.id == "messaging.W001"


def test_manage_py_check_fails_on_errors() -> None:
    with override_settings(MESSAGING={"DEMO": {"TIMEOUT": "x"}}), pytest.raises(SystemCheckError):
        call_command("check")


def test_a_dotted_path_that_cannot_be_imported_is_an_error_naming_the_setting() -> None:
    assert run({"DEMO": {"HANDLER": "json.dumps"}}) == []
    (error,) = run({"DEMO": {"HANDLER": "json.no_such_function"}})
    assert error.id == "messaging.E008"
    assert "MESSAGING['DEMO']['HANDLER']" in error.msg and "json.no_such_function" in error.msg


def test_the_reference_librarys_dict_is_checked_like_the_section() -> None:
    with override_settings(MESSAGING={}, DEMO_LEGACY={"TIMOUT": 5, "MODE": 3}):
        messages = [m for m in check_messaging_settings() if "DEMO_LEGACY" in m.msg]
    assert sorted(ids(messages)) == ["messaging.E004", "messaging.E005"]
    assert any("Did you mean 'TIMEOUT'" in (m.hint or "") for m in messages)


def test_the_reference_librarys_dict_beside_the_section_is_reported_as_ignored() -> None:
    with override_settings(MESSAGING={"DEMO": {}}, DEMO_LEGACY={"TIMEOUT": 5}):
        messages = [m for m in check_messaging_settings() if "DEMO_LEGACY" in m.msg]
    assert ids(messages) == ["messaging.W002"]


def test_kafka_client_configs_are_read_without_the_kafka_app(settings) -> None:
    """CQRS over Kafka and the other packages' Kafka transports read the client configurations
    of MESSAGING["KAFKA"]; only the Kafka app's own keys have no effect without it."""
    installed = [app for app in settings.INSTALLED_APPS if "kafka" not in app]
    kafka = {
        "GLOBAL_CONFIG": {"bootstrap.servers": "localhost:9092"},
        "CONSUMER_CONFIG": {"session.timeout.ms": 6000},
        "CLIENT_ID": "app",
    }
    with override_settings(INSTALLED_APPS=installed, MESSAGING={"KAFKA": kafka}):
        (message,) = check_messaging_settings()
        assert message.id == "messaging.W001"
        assert "'CLIENT_ID'" in message.msg
        with override_settings(MESSAGING={"KAFKA": {"PRODUCER_CONFIG": "acks=all"}}):
            (message,) = check_messaging_settings()
        assert message.id == "messaging.E005"
    with override_settings(MESSAGING={"KAFKA": kafka}):
        assert check_messaging_settings() == []
