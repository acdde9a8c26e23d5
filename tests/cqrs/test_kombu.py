"""KombuTransport over RabbitMQ (amqp://): replication, retries and dead letters."""

from __future__ import annotations

import json

import pytest

from django_messaging.cqrs.transport.kombu import KombuConsumer, KombuTransport
from tests.cqrs.conftest import drain, queue_depth
from tests.project.cqrs_app.models import Poison, PoisonRef, Product, ProductRef

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kombu(cqrs_settings, broker):
    cqrs_settings["transport"] = "django_messaging.cqrs.transport.KombuTransport"
    yield broker
    KombuTransport.clean_connection()


def drain_kombu(until, timeout=20.0):
    drain(until, timeout, "the Kombu consumer", consumer_class=KombuConsumer)


def test_kombu_replicates_create_update_delete(kombu):
    a = Product.objects.create(name="k1")
    b = Product.objects.create(name="k2")
    a.name = "k1 updated"
    a.save()
    b.delete()
    drain_kombu(lambda: dict(ProductRef.objects.values_list("pk", "name")) == {a.pk: "k1 updated"})


def test_kombu_failures_are_retried_then_dead_lettered(kombu, cqrs_settings):
    """django-cqrs research §4.2 #7: its Kombu transport dropped failures and crashed workers."""
    Poison.objects.create(name="poison via kombu")
    good = Poison.objects.create(name="good")
    dlq = f"dead_letter_{cqrs_settings['queue']}"
    drain_kombu(
        lambda: queue_depth(kombu, dlq) == 1 and PoisonRef.objects.filter(pk=good.pk).exists()
    )
    _method, props, body = kombu.basic_get(dlq, auto_ack=True)
    assert json.loads(body)["retries"] == 2
    assert props.content_type == "text/plain"
