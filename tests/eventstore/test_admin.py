"""The admin shows stored events, snapshots, positions and sequences, and changes none of them."""

from __future__ import annotations

import uuid

import pytest
from eventsourcing.persistence import StoredEvent, Tracking

from django_messaging.eventstore.recorders import DjangoAggregateRecorder, DjangoProcessRecorder


@pytest.mark.django_db
def test_admin_lists_rows_read_only(admin_client) -> None:  # type: ignore[no-untyped-def]
    process = DjangoProcessRecorder("AdminApp")
    process.insert_events(
        [StoredEvent(uuid.uuid4(), 1, "shop:Order.Created", b'{"total": 5}')],
        tracking=Tracking("Upstream", 7),
    )
    DjangoAggregateRecorder("AdminApp").insert_events(
        [StoredEvent(uuid.uuid4(), 3, "shop:Order", b"{}")]
    )
    pages = {
        "storedeventrecord": b"shop:Order.Created",
        "aggregaterecord": b"shop:Order",
        "notificationtrackingrecord": b"Upstream",
        "notificationsequence": b"AdminApp",
    }
    for model, expected in pages.items():
        response = admin_client.get(f"/admin/messaging_eventstore/{model}/")
        assert response.status_code == 200, model
        assert expected in response.content, model
        assert admin_client.get(f"/admin/messaging_eventstore/{model}/add/").status_code == 403
    from django_messaging.eventstore.models import StoredEventRecord

    row = StoredEventRecord.objects.get()
    detail = admin_client.get(f"/admin/messaging_eventstore/storedeventrecord/{row.pk}/change/")
    assert detail.status_code == 200
    assert b"total" in detail.content
