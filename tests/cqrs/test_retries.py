"""Retries and dead letters wait in RabbitMQ, not in a worker: delay queues with a TTL, the
replica's ``should_retry_cqrs`` / ``get_cqrs_retry_delay`` hooks, expiry, dead letter TTLs."""

from __future__ import annotations

import datetime as dt
import json

import pika
import pytest
from django.utils import timezone

from django_messaging.cqrs.transport.kombu import KombuConsumer, KombuTransport
from django_messaging.cqrs.transport.rabbit_mq import RabbitMQConsumer
from tests.cqrs.conftest import drain, queue_depth
from tests.project.cqrs_app.models import Poison, PoisonRef

pytestmark = pytest.mark.django_db(transaction=True)

CONSUMERS = {"pika": RabbitMQConsumer, "kombu": KombuConsumer}


@pytest.fixture(params=sorted(CONSUMERS))
def consumer_class(request, cqrs_settings, broker):
    if request.param == "kombu":
        cqrs_settings["transport"] = "django_messaging.cqrs.transport.KombuTransport"
    yield CONSUMERS[request.param]
    KombuTransport.clean_connection()


def test_a_failure_waits_in_a_delay_queue_then_follows_the_replica_hooks(
    consumer_class, broker, cqrs_settings, monkeypatch
):
    """django-cqrs held failed messages unacknowledged in the worker's memory for the delay."""
    monkeypatch.setattr(
        PoisonRef, "should_retry_cqrs", classmethod(lambda cls, current, exc=None: current < 1)
    )
    monkeypatch.setattr(PoisonRef, "get_cqrs_retry_delay", classmethod(lambda cls, current: 3))
    cqrs_settings["replica"] = {"dead_message_ttl": 600}
    queue = cqrs_settings["queue"]
    delay_queue, dlq = f"{queue}.delay.3000", f"dead_letter_{queue}"
    Poison.objects.create(name="poison, retried once")

    def delayed():
        try:
            return queue_depth(broker, delay_queue) == 1
        except pika.exceptions.ChannelClosedByBroker:
            return False

    # The first attempt fails and the worker stops: the message is in the delay queue, not
    # unacknowledged in the stopped worker (which would have put it back in the main queue).
    drain(delayed, consumer_class=consumer_class)
    channel = broker.connection.channel()  # the probe above may have closed the first one
    assert queue_depth(channel, queue) == 0
    assert queue_depth(channel, dlq) == 0
    # After the delay it is back in the main queue; one retry is all the hook allows.
    drain(lambda: queue_depth(channel, dlq) == 1, timeout=30, consumer_class=consumer_class)
    _method, props, body = channel.basic_get(dlq, auto_ack=True)
    message = json.loads(body)
    assert message["retries"] == 1 and message["instance_data"]["name"] == "poison, retried once"
    # What failed, where and with which ids; not the replica's message, which quotes the data.
    reason = props.headers["x-cqrs-error"]
    assert reason.startswith("cqrs_id='poison' pk=") and "revision=0" in reason
    assert reason.endswith("SAVE failed: RuntimeError") and "retried once" not in reason
    assert props.expiration == "600000"  # dead_message_ttl
    assert queue_depth(channel, delay_queue) == 0


def test_an_expired_message_is_dead_lettered_not_applied(consumer_class, broker, cqrs_settings):
    queue = cqrs_settings["queue"]
    expired = {
        "signal_type": "SAVE",
        "cqrs_id": "poison",
        "instance_data": {
            "id": 71,
            "name": "too late",
            "cqrs_revision": 0,
            "cqrs_updated": str(timezone.now()),
        },
        "instance_pk": 71,
        "previous_data": None,
        "correlation_id": None,
        "retries": 0,
        "expires": (timezone.now() - dt.timedelta(minutes=1)).isoformat(),
        "meta": None,
    }
    broker.basic_publish(exchange="", routing_key=queue, body=json.dumps(expired))
    dlq = f"dead_letter_{queue}"
    drain(lambda: queue_depth(broker, dlq) == 1, consumer_class=consumer_class)
    _method, props, body = broker.basic_get(dlq, auto_ack=True)
    assert props.headers["x-cqrs-error"] == "cqrs_id='poison' pk=71 revision=0: expired"
    assert json.loads(body)["instance_pk"] == 71
    assert not PoisonRef.objects.filter(pk=71).exists()
