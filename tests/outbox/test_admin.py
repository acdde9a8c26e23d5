"""Admin for Published and Received: filters and the re-send action."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from django_messaging.outbox.choices import StatusChoice
from django_messaging.outbox.models import Published, Received

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(user)
    return client


def test_published_changelist_filters(admin_client) -> None:
    Published.objects.create(destination="/topic/a", body={}, status=StatusChoice.FAILED)
    Published.objects.create(destination="/topic/b", body={})
    url = reverse("admin:messaging_outbox_published_changelist")
    response = admin_client.get(url, {"status__exact": StatusChoice.FAILED})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "/topic/b"}).context["cl"].result_count == 1


def test_received_changelist_filters(admin_client) -> None:
    Received.objects.create(msg_id="1", queue="q1")
    Received.objects.create(msg_id="2", queue="q2")
    url = reverse("admin:messaging_outbox_received_changelist")
    response = admin_client.get(url, {"queue": "q2"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_resend_action_schedules_failed_rows_again(admin_client) -> None:
    """django-outbox-pattern: FAILED rows were terminal, with nothing to re-queue them."""
    failed = Published.objects.create(
        destination="/topic/a", body={}, status=StatusChoice.FAILED, retry=50, last_error="x"
    )
    response = admin_client.post(
        reverse("admin:messaging_outbox_published_changelist"),
        {"action": "resend", "_selected_action": [str(failed.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    failed.refresh_from_db()
    assert (failed.status, failed.retry, failed.last_error) == (StatusChoice.SCHEDULE, 0, "")
