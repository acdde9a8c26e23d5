"""CQRS in a project without time zone support (``USE_TZ = False``), master and replica."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_messaging.cqrs.publishing import wait_for_confirms
from django_messaging.cqrs.testing import CqrsBroker
from django_messaging.testing import committed
from tests.cqrs.conftest import drain, queue_depth
from tests.project.cqrs_app.models import Product, ProductRef


@pytest.mark.django_db
@override_settings(USE_TZ=False)
def test_a_project_without_time_zone_support_replicates_saves_and_deletes() -> None:
    with CqrsBroker() as broker:
        with committed(), transaction.atomic():
            product = Product.objects.create(name="desk")
        assert broker.deliver() == 1
        assert list(broker.dead_letters) == []
        replica = ProductRef.objects.get(pk=product.pk)
        assert replica.name == "desk" and timezone.is_naive(replica.cqrs_updated)
        with committed(), transaction.atomic():
            product.name = "big desk"
            product.save()
        assert broker.deliver() == 1
        assert ProductRef.objects.get(pk=product.pk).name == "big desk"
        with committed(), transaction.atomic():
            product.delete()
        assert broker.deliver() == 1
        assert not ProductRef.objects.filter(pk=product.pk).exists()
        assert list(broker.dead_letters) == []


@pytest.mark.django_db(transaction=True)
def test_a_project_without_time_zone_support_replicates_through_rabbitmq(broker, cqrs_settings):
    """The same through RabbitMQ: the master publishes with confirms, the replica consumer
    applies each message and dead-letters none."""
    with override_settings(USE_TZ=False):
        product = Product.objects.create(name="desk")
        drain(lambda: ProductRef.objects.filter(pk=product.pk).exists(), what="the create")
        product.name = "big desk"
        product.save()
        drain(
            lambda: ProductRef.objects.filter(pk=product.pk, name="big desk").exists(),
            what="the update",
        )
        assert timezone.is_naive(ProductRef.objects.get(pk=product.pk).cqrs_updated)
        product.delete()
        drain(lambda: not ProductRef.objects.filter(pk=product.pk).exists(), what="the delete")
        assert wait_for_confirms() == 0
    assert queue_depth(broker, f"dead_letter_{cqrs_settings['queue']}") == 0
