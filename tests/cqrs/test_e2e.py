"""Master and replica as separate processes over real RabbitMQ."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction

from tests.cqrs.conftest import queue_depth
from tests.helpers import wait_until
from tests.project.cqrs_app.models import Product, ProductRef

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_update_delete_replicate_to_a_separate_process(consumer, broker):
    replica = consumer(workers=1)
    product = Product.objects.create(
        name="desk",
        price=Decimal("1234.567891"),
        day=dt.date(2026, 12, 2),
        at=dt.time(6, 45, 23, 123456),
        duration=dt.timedelta(days=1, microseconds=7),
        blob=b"\x00\xffbinary",
    )
    row = wait_until(lambda: ProductRef.objects.filter(pk=product.pk).first(), what="replica row")
    assert row.price == Decimal("1234.567891")
    assert row.at == dt.time(6, 45, 23, 123456)
    assert row.duration == dt.timedelta(days=1, microseconds=7)
    assert bytes(row.blob) == b"\x00\xffbinary"
    assert row.day == dt.date(2026, 12, 2)
    assert row.cqrs_revision == 0

    with transaction.atomic():
        product.name = "big desk"
        product.save()
        product.save()
    wait_until(
        lambda: ProductRef.objects.filter(pk=product.pk, name="big desk", cqrs_revision=1).exists(),
        what="update",
    )
    product.delete()
    wait_until(lambda: not ProductRef.objects.filter(pk=product.pk).exists(), what="delete")
    assert replica.terminate() == 0
    assert queue_depth(broker, replica.env["MESSAGING_CQRS_QUEUE"]) == 0
