"""A dead letter's ``x-cqrs-error`` says what failed and where, never what the message held."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.utils import timezone

from tests.cqrs.conftest import drain, queue_depth
from tests.project.cqrs_app.models import ProductRef

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_nul_byte_that_postgresql_refuses_leaves_no_data_or_sql_in_the_reason(
    broker, cqrs_settings, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL refuses NUL bytes in text; SQLite stores them")
    monkeypatch.setattr(
        ProductRef, "should_retry_cqrs", classmethod(lambda cls, current, exc=None: False)
    )
    queue = cqrs_settings["queue"]
    message = {
        "signal_type": "SAVE",
        "cqrs_id": "product",
        "instance_data": {
            "id": 4242,
            "name": "confidential\x00customer",
            "price": "1.50",
            "cqrs_revision": 3,
            "cqrs_updated": str(timezone.now()),
        },
        "instance_pk": 4242,
        "previous_data": None,
        "correlation_id": None,
        "retries": 0,
        "expires": None,
        "meta": None,
    }
    broker.basic_publish(exchange="", routing_key=queue, body=json.dumps(message))
    dlq = f"dead_letter_{queue}"
    drain(lambda: queue_depth(broker, dlq) == 1, what="the dead letter")
    _method, props, body = broker.basic_get(dlq, auto_ack=True)
    reason = props.headers["x-cqrs-error"]
    assert reason.startswith("cqrs_id='product' pk=4242 revision=3: SAVE failed: "), reason
    for leak in ("confidential", "customer", "\x00", "\\x00", "INSERT", "UPDATE", "SELECT"):
        assert leak not in reason, reason
    assert json.loads(body)["instance_data"]["name"] == "confidential\x00customer"
    assert not ProductRef.objects.filter(pk=4242).exists()
