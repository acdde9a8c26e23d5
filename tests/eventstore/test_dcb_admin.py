"""The admin shows DCB events and sequences, and changes none of them."""

from __future__ import annotations

import pytest
from eventsourcing.dcb.api import DCBEvent

from django_messaging.eventstore.dcb import DjangoDCBRecorder
from django_messaging.eventstore.dcb_models import DCBEventRecord


@pytest.mark.django_db
def test_admin_lists_dcb_rows_read_only(admin_client) -> None:  # type: ignore[no-untyped-def]
    DjangoDCBRecorder("AdminDCB").append(
        [DCBEvent("shop:SeatBooked", b'{"seat": "12A"}', ["flight-7", "seat-12A"])]
    )
    pages = {"dcbeventrecord": b"shop:SeatBooked", "dcbsequence": b"AdminDCB"}
    for model, expected in pages.items():
        response = admin_client.get(f"/admin/messaging_eventstore/{model}/")
        assert response.status_code == 200, model
        assert expected in response.content, model
        assert admin_client.get(f"/admin/messaging_eventstore/{model}/add/").status_code == 403
    row = DCBEventRecord.objects.get()
    detail = admin_client.get(f"/admin/messaging_eventstore/dcbeventrecord/{row.pk}/change/")
    assert detail.status_code == 200
    assert b"12A" in detail.content
    assert b"seat-12A" in detail.content
