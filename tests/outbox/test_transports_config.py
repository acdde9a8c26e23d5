"""Named outbox transports: one publish command for every broker, and the configuration checks."""

from __future__ import annotations

import json
import signal

import pytest
from django.core.management import CommandError, call_command
from django.db import models
from django.test.utils import isolate_apps

from django_messaging.outbox.checks import check_transports
from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.decorators import Config, NewRow, insert_outbox_rows, publish
from django_messaging.outbox.models import Published
from tests.helpers import catches_signal, read_topic, wait_until
from tests.outbox.brokers import (
    bound_queue,
    drain,
    kafka_transport,
    new_topic,
    outbox_with,
    relay_env,
)
from tests.outbox.helpers import topic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


# one command, three brokers -----------------------------------------------------------------


def test_one_publish_command_relays_every_transport(
    kafka_bootstrap, rabbitmq_url, exchange, stomp_address, probe, processes, unique_name
) -> None:
    name, channel = exchange
    queue = bound_queue(channel, name, "orders")
    kafka_topic = new_topic(kafka_bootstrap, partitions=1)
    destination, _ = topic(unique_name)
    p = probe(destination)
    transports = {
        "events": kafka_transport(kafka_bootstrap),
        "rabbit": {"BACKEND": "amqp", "OPTIONS": {"url": rabbitmq_url, "exchange": name}},
    }
    rows = [NewRow(destination, None, {"to": "stomp", "n": n}) for n in range(20)]
    rows += [NewRow(kafka_topic, None, {"to": "kafka", "n": n}, "events") for n in range(20)]
    rows += [NewRow("orders", None, {"to": "amqp", "n": n}, "rabbit") for n in range(20)]
    insert_outbox_rows("default", rows)
    relay = processes.start("publish", env=relay_env(transports, kafka_bootstrap))
    wait_until(
        lambda: Published.objects.filter(status=StatusChoice.SUCCEEDED).count() == 60,
        timeout=60,
        what="every row sent",
    )
    assert sorted(json.loads(b)["n"] for _, b in drain(channel, queue, 20)) == list(range(20))
    assert [
        json.loads(r.value())["n"] for r in read_topic(kafka_bootstrap, kafka_topic, 20)
    ] == list(range(20))
    wait_until(lambda: len(p.messages) >= 20, what="the STOMP messages")
    assert sorted(json.loads(body)["n"] for _, body in p.messages) == list(range(20))
    wait_until(lambda: catches_signal(relay.pid, signal.SIGTERM), what="relay running")
    relay.send_signal(signal.SIGTERM)
    out, _ = relay.communicate(timeout=60)
    assert relay.returncode == 0, out[-3000:]
    assert out.count("stopped cleanly") == 3, out[-3000:]


# configuration ------------------------------------------------------------------------------


def test_checks_name_bad_transports() -> None:
    transports = {
        "a": {"BACKEND": "nowhere.Transport"},
        "b": {"BACKEND": "stomp", "OPTIONS": {"x": 1}},
        "c": {"OPTIONS": {}},
        "d": {"BACKEND": "amqp", "CREATE_TOPICS": True},
        "e": {"BACKEND": "kafka", "OPTIONS": {"bootstrap.servers": "k:9092"}, "TYPO": 1},
    }
    with outbox_with(transports):
        errors = check_transports()
    assert {e.id for e in errors} == {"messaging_outbox.E001"}
    text = "\n".join(e.msg for e in errors)
    assert "['a']['BACKEND'] 'nowhere.Transport'" in text
    assert "['b']: the stomp backend takes no OPTIONS" in text
    assert "['c'] needs a 'BACKEND'" in text
    assert "['d']: CREATE_TOPICS" in text
    assert "['e'] has unknown keys ['TYPO']" in text
    with outbox_with({}):
        assert check_transports() == []


def test_check_names_a_config_with_an_unknown_transport() -> None:
    with isolate_apps("tests.project.outbox_app"):

        @publish([Config(destination="x", transport="nope")])
        class Stray(models.Model):
            class Meta:
                app_label = "outbox_app"

        from django.apps import apps

        get_models = apps.get_models
        try:
            apps.get_models = lambda *a, **k: [*get_models(*a, **k), Stray]  # type: ignore[method-assign]
            errors = check_transports()
        finally:
            apps.get_models = get_models  # type: ignore[method-assign]
    assert [e.id for e in errors] == ["messaging_outbox.E002"]
    assert "'nope'" in errors[0].msg


def test_publish_refuses_an_unknown_transport() -> None:
    with pytest.raises(CommandError, match="'nope' is not defined") as exc:
        call_command("publish", "--transport", "nope")
    assert exc.value.returncode == 2
