"""The admin sync action, through the real admin changelist view."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth.models import User

from django_messaging.cqrs.admin import CQRSAdminMasterSyncMixin
from django_messaging.cqrs.admin_mixins import CQRSAdminMasterSyncMixin as FromReadmePath
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.transport import TransportMock
from tests.project.cqrs_app.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


def test_sync_items_action_publishes_sync_messages(client, settings):
    messaging = copy.deepcopy(settings.MESSAGING)
    messaging["CQRS"]["transport"] = "django_messaging.cqrs.transport.TransportMock"
    settings.MESSAGING = messaging
    TransportMock.produced = []
    products = [Product.objects.create(name=f"a{i}") for i in range(3)]
    TransportMock.produced.clear()
    admin = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)
    response = client.post(
        "/admin/test_cqrs/product/",
        {"action": "sync_items", "_selected_action": [p.pk for p in products[:2]]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"2 item(s) sent for synchronization" in response.content
    assert [p.signal_type for p in TransportMock.produced] == [SignalType.SYNC] * 2
    assert FromReadmePath is CQRSAdminMasterSyncMixin
    page = client.get("/admin/messaging_cqrs/pendingmessage/")
    assert page.status_code == 200
