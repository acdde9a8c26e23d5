"""Publisher confirms: a message the broker refuses is stored, in both confirm modes."""

from __future__ import annotations

import pytest

from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.transport import RabbitMQTransport
from tests.cqrs.conftest import queue_depth
from tests.project.cqrs_app.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refusing_queue(broker, cqrs_settings):
    """A queue that makes the broker nack every 'product' publish (x-overflow=reject-publish)."""
    name = cqrs_settings["queue"] + "-full"
    broker.queue_declare(queue=name, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    broker.queue_bind(queue=name, exchange=cqrs_settings["exchange"], routing_key="product")
    yield name
    broker.queue_delete(queue=name)


@pytest.mark.parametrize("mode", ["each", "pipelined"])
def test_a_refused_message_is_stored_not_dropped(mode, refusing_queue, cqrs_settings):
    """django-cqrs research §4.2 #3 and #8: no confirms, so refused messages vanished."""
    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": mode}
    product = Product.objects.create(name="refused")
    RabbitMQTransport.wait_for_confirms()
    stored = PendingMessage.objects.get()
    assert (stored.cqrs_id, stored.instance_pk) == ("product", str(product.pk))
    assert "nack" in stored.last_error


def test_pipelined_confirms_deliver_everything(broker, cqrs_settings):
    cqrs_settings["master"] = {"CQRS_PUBLISH_CONFIRMS": "pipelined", "CQRS_CONFIRM_WINDOW": 10}
    for i in range(50):
        Product.objects.create(name=f"p{i}")
    assert RabbitMQTransport.wait_for_confirms() == 0
    assert queue_depth(broker, cqrs_settings["queue"]) == 50
    assert not PendingMessage.objects.exists()


def test_unroutable_messages_are_logged_not_stored(cqrs_settings, caplog):
    caplog.set_level("INFO", logger="django_messaging.cqrs.transport.rabbit_mq")
    Product.objects.create(name="nobody listens")  # no queue bound on this test's exchange
    RabbitMQTransport.wait_for_confirms()
    assert "no replica queue is bound to 'product'" in caplog.text
    assert not PendingMessage.objects.exists()


def test_old_tombstones_are_purged(settings):
    import datetime as dt

    from django.utils import timezone

    from django_messaging.cqrs.models import Tombstone
    from django_messaging.cqrs.utils import purge_tombstones

    old = Tombstone.objects.create(cqrs_id="product", instance_pk="1", deleted_at=timezone.now())
    Tombstone.objects.filter(pk=old.pk).update(created=timezone.now() - dt.timedelta(days=8))
    Tombstone.objects.create(cqrs_id="product", instance_pk="2", deleted_at=timezone.now())
    assert purge_tombstones() == 1
    assert list(Tombstone.objects.values_list("instance_pk", flat=True)) == ["2"]
