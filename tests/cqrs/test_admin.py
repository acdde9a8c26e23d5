"""The admin sync action, through the real admin changelist view."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from django_messaging.cqrs.admin import CQRSAdminMasterSyncMixin
from django_messaging.cqrs.admin_mixins import CQRSAdminMasterSyncMixin as FromReadmePath
from django_messaging.cqrs.constants import SignalType
from django_messaging.cqrs.models import PendingMessage, Tombstone
from tests.project.cqrs_app.admin import ProductAdmin
from tests.project.cqrs_app.models import Product

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client_logged_in(client):
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    return client


def test_sync_items_action_publishes_sync_messages(produced, admin_client_logged_in):
    client = admin_client_logged_in
    products = [Product.objects.create(name=f"a{i}") for i in range(3)]
    produced.clear()
    response = client.post(
        "/admin/test_cqrs/product/",
        {"action": "sync_items", "_selected_action": [p.pk for p in products[:2]]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"2 item(s) sent for synchronization" in response.content
    assert [p.signal_type for p in produced] == [SignalType.SYNC] * 2
    assert FromReadmePath is CQRSAdminMasterSyncMixin


def test_the_sync_queryset_hook_shapes_what_is_sent(produced, admin_client_logged_in, monkeypatch):
    products = [Product.objects.create(name=f"h{i}") for i in range(3)]
    produced.clear()
    monkeypatch.setattr(ProductAdmin, "_cqrs_sync_queryset", lambda self, qs: qs.exclude(name="h1"))
    response = admin_client_logged_in.post(
        "/admin/test_cqrs/product/",
        {"action": "sync_items", "_selected_action": [p.pk for p in products]},
        follow=True,
    )
    assert b"2 item(s) sent for synchronization" in response.content
    assert sorted(p.pk for p in produced) == [products[0].pk, products[2].pk]


def test_stored_messages_and_tombstones_can_be_looked_at(admin_client_logged_in):
    PendingMessage.objects.create(
        cqrs_id="product", signal_type="SAVE", instance_pk="4242", body="", last_error="boom"
    )
    Tombstone.objects.create(cqrs_id="product", instance_pk="4343", deleted_at=timezone.now())
    pending = admin_client_logged_in.get("/admin/messaging_cqrs/pendingmessage/")
    assert pending.status_code == 200 and b"4242" in pending.content
    PendingMessage.objects.create(
        cqrs_id="product", signal_type="SAVE", instance_pk="5151", body="", last_error="other"
    )
    found = admin_client_logged_in.get("/admin/messaging_cqrs/pendingmessage/?q=boom")
    assert b"4242" in found.content and b"5151" not in found.content
    tombs = admin_client_logged_in.get("/admin/messaging_cqrs/tombstone/")
    assert tombs.status_code == 200 and b"4343" in tombs.content
