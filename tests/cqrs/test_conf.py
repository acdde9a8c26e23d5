"""Settings: declared keys checked by Django, the legacy CQRS dict, URLs with vhosts and TLS."""

from __future__ import annotations

import copy

import pika
import pytest
from django.core import checks
from django.test import override_settings

from django_messaging.cqrs.conf import settings as cqrs_settings
from django_messaging.cqrs.transport.rabbit_mq import connection_parameters


def _ids(messages):
    return {m.id for m in messages if m.id and m.id.startswith("messaging.")}


def _with_cqrs(settings, **cqrs):
    messaging = copy.deepcopy(settings.MESSAGING)
    messaging["CQRS"] = {**messaging["CQRS"], **cqrs}
    settings.MESSAGING = messaging


def test_unknown_keys_and_wrong_types_are_reported(settings):
    _with_cqrs(settings, queu="typo", replica={"CQRS_MAX_RETRIES": "many"})
    messages = checks.run_checks()
    texts = " ".join(m.msg + (m.hint or "") for m in messages)
    assert "queu" in texts and "queue" in texts
    assert "CQRS_MAX_RETRIES" in texts
    assert {"messaging.E004", "messaging.E005"} <= _ids(messages)


def test_both_spellings_of_the_delay_queue_size_warn_that_they_have_no_effect(settings):
    """django-cqrs reads ``delay_queue_max_size`` and documents ``CQRS_DELAY_QUEUE_MAX_SIZE``;
    delays are broker-side here, so ``manage.py check`` says either key does nothing."""
    assert "messaging.W304" not in _ids(checks.run_checks())
    _with_cqrs(settings, replica={"delay_queue_max_size": 50, "CQRS_DELAY_QUEUE_MAX_SIZE": 50})
    warnings = [m for m in checks.run_checks() if m.id == "messaging.W304"]
    assert len(warnings) == 2
    assert all(m.level == checks.WARNING and "no effect" in m.msg for m in warnings)
    _with_cqrs(settings, replica={"CQRS_DELAY_QUEUE_MAX_SIZE": "big"})
    assert "messaging.E005" in _ids(checks.run_checks())


def test_master_and_replica_settings_are_read_through_the_section(settings):
    """Unset keys fall back to the declared defaults, set ones win, unknown ones are refused."""
    from django_messaging.cqrs.conf import master_setting, replica_setting

    _with_cqrs(settings, master={"CQRS_OUTBOX_GRACE": 5}, replica={"CQRS_BATCH_SIZE": 7})
    assert master_setting("CQRS_OUTBOX_GRACE") == 5
    assert master_setting("CQRS_CONFIRM_WINDOW") == 1000
    assert replica_setting("CQRS_BATCH_SIZE") == 7
    assert replica_setting("CQRS_MAX_RETRIES") == 30
    with pytest.raises(KeyError):
        master_setting("CQRS_NO_SUCH_KEY")


def test_replica_service_needs_a_queue_and_a_real_transport(settings):
    _with_cqrs(settings, queue=None, transport="no.such.Transport")
    assert {"messaging.E008", "messaging.E303"} <= _ids(checks.run_checks())
    _with_cqrs(settings, queue="q", transport="django_messaging.cqrs.conf.Section")
    assert "messaging.E302" in _ids(checks.run_checks())


def correlation(*args):
    return "corr-from-path"


def meta(obj, **kwargs):
    return {"from": "path"}


@pytest.mark.parametrize(
    "values,where",
    [
        ({"transport": "django_messaging.cqrs.transport.NoSuch"}, "['transport']"),
        ({"master": {"correlation_function": f"{__name__}.nope"}}, "['correlation_function']"),
        ({"master": {"meta_function": "no_such_module.meta"}}, "['meta_function']"),
    ],
)
def test_a_dotted_path_that_cannot_be_imported_is_e008_naming_the_setting(settings, values, where):
    _with_cqrs(settings, **values)
    errors = [m for m in checks.run_checks() if m.id == "messaging.E008"]
    assert len(errors) == 1, [m.msg for m in checks.run_checks()]
    assert errors[0].msg.startswith("MESSAGING['CQRS']") and where in errors[0].msg


def test_the_transport_follows_a_settings_change(settings):
    from django_messaging.cqrs.transport import RabbitMQTransport, TransportMock, current_transport

    _with_cqrs(settings, transport="django_messaging.cqrs.transport.RabbitMQTransport")
    assert current_transport() is RabbitMQTransport
    _with_cqrs(settings, transport="django_messaging.cqrs.transport.TransportMock")
    assert current_transport() is TransportMock
    _with_cqrs(settings, transport=RabbitMQTransport)  # a class, not a path
    assert current_transport() is RabbitMQTransport


def test_correlation_and_meta_functions_follow_a_settings_change(settings):
    from django_messaging.cqrs.utils import get_correlation_id, get_meta

    _with_cqrs(settings, master={})
    assert get_correlation_id("SAVE", "product", 1, None) is None
    assert get_meta(object()) == {}
    _with_cqrs(
        settings,
        master={
            "correlation_function": f"{__name__}.correlation",
            "meta_function": f"{__name__}.meta",
        },
    )
    assert get_correlation_id("SAVE", "product", 1, None) == "corr-from-path"
    assert get_meta(object()) == {"from": "path"}
    _with_cqrs(settings, master={"correlation_function": lambda *args: "corr-callable"})
    assert get_correlation_id("SAVE", "product", 1, None) == "corr-callable"
    assert get_meta(object()) == {}


def test_nested_defaults_and_legacy_setting(settings):
    assert cqrs_settings.master["CQRS_MESSAGE_TTL"] == 86400
    assert cqrs_settings.replica["dead_message_ttl"] == 864000
    messaging = copy.deepcopy(settings.MESSAGING)
    del messaging["CQRS"]
    settings.MESSAGING = messaging
    settings.CQRS = {"queue": "from_legacy", "replica": {"CQRS_RETRY_DELAY": 5}}
    assert cqrs_settings.queue == "from_legacy"
    assert cqrs_settings.replica["CQRS_RETRY_DELAY"] == 5
    assert cqrs_settings.replica["CQRS_MAX_RETRIES"] == 30


def test_url_keeps_vhost_and_amqps_uses_tls(settings):
    """django-cqrs research §4.2 #16: the vhost was dropped and amqps:// refused."""
    _with_cqrs(settings, url="amqps://u:p@broker.example:5671/tenant%2Fa?heartbeat=10")
    params = connection_parameters()
    assert params.virtual_host == "tenant/a"
    assert params.ssl_options is not None and params.port == 5671
    _with_cqrs(settings, url=None, host="h", port=1234, user="x", password="y")
    params = connection_parameters()
    assert (params.host, params.port, params.credentials.username) == ("h", 1234, "x")


@pytest.mark.django_db(transaction=True)
def test_replication_through_a_virtual_host(cqrs_settings, unique_name):
    """A real vhost: created for this test, used for publishing and consuming, then removed."""
    import subprocess

    from tests.cqrs.conftest import drain
    from tests.project.cqrs_app.models import Product, ProductRef

    vhost = unique_name("vh")
    run = lambda *a: subprocess.run(["rabbitmqctl", "-q", *a], check=True, timeout=60)  # noqa: E731
    run("add_vhost", vhost)
    try:
        run("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        cqrs_settings["url"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        from django_messaging.cqrs.transport import RabbitMQTransport

        RabbitMQTransport.clean_connection()
        connection = pika.BlockingConnection(connection_parameters())
        from django_messaging.cqrs.registries import ReplicaRegistry
        from django_messaging.cqrs.transport.rabbit_mq import declare_replica_topology

        declare_replica_topology(connection.channel(), list(ReplicaRegistry.models))
        connection.close()
        product = Product.objects.create(name="in a vhost")
        drain(lambda: ProductRef.objects.filter(pk=product.pk).exists(), what="vhost row")
    finally:
        from django_messaging.cqrs.transport import RabbitMQTransport

        RabbitMQTransport.clean_connection()
        run("delete_vhost", vhost)


@pytest.mark.django_db
def test_the_migrations_match_the_models():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "messaging_cqrs", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_reading_one_cqrs_master_key_copies_no_other_default(monkeypatch) -> None:
    """A CQRS save reads several master keys: each read costs that key, not the whole section."""
    from django_messaging.core import settings as core_settings
    from django_messaging.cqrs.conf import master_setting

    copied: list = []
    real_copy = core_settings._copy

    def counting_copy(default):
        copied.append(default)
        return real_copy(default)

    monkeypatch.setattr(core_settings, "_copy", counting_copy)
    with override_settings(MESSAGING={"CQRS": {"master": {"CQRS_MESSAGE_TTL": 5}}}):
        assert master_setting("CQRS_MESSAGE_TTL") == 5
        assert master_setting("CQRS_PUBLISH_CONFIRMS") == "outbox"
    assert len(copied) <= 1, copied
