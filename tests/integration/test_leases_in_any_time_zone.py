"""A relay's lease lasts what it says in every database, whatever the project's ``TIME_ZONE``:
the outbox relay and the CQRS relay of stored messages, claim and renewal alike."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from django_messaging.cqrs.models import PendingMessage
from django_messaging.cqrs.relay import PendingStore
from django_messaging.outbox.models import Published
from django_messaging.outbox.relay import PublishedStore

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 60.0


@pytest.fixture(autouse=True)
def far_from_utc(settings):
    # UTC+5:30 all year: a lease read in the wrong zone is hours off, never by chance right.
    settings.TIME_ZONE = "Asia/Kolkata"


def leased(store, ids):
    """Claim (or, with ``ids``, renew) for relay ``a``; the lease ends the rows got, and the
    earliest and latest end the lease could rightly have."""
    earliest = timezone.now() + dt.timedelta(seconds=LEASE)
    if ids is None:
        ids = [row.pk for row in store.claim("relay-a", 10, LEASE)]
    else:
        assert store.renew("relay-a", ids, LEASE) == len(ids)
    latest = timezone.now() + dt.timedelta(seconds=LEASE)
    return ids, earliest, latest


def cqrs_row():
    row = PendingMessage.objects.create(
        cqrs_id="product", signal_type="SAVE", instance_pk="1", body="{}", attempts=1
    )
    return row, PendingStore()


def outbox_row():
    return Published.objects.create(destination="/topic/lease", body={"n": 1}), PublishedStore()


@pytest.mark.parametrize("renew", [False, True], ids=["claim", "renew"])
@pytest.mark.parametrize("relayed", [cqrs_row, outbox_row], ids=["cqrs", "outbox"])
def test_a_row_is_leased_for_the_lease(relayed, renew):
    row, store = relayed()
    ids, earliest, latest = leased(store, None)
    assert ids == [row.pk]
    if renew:
        ids, earliest, latest = leased(store, ids)
    row.refresh_from_db()
    assert row.claimed_by == "relay-a"
    # Stored to the microsecond, or to the second where the database keeps no fraction.
    assert earliest.replace(microsecond=0) <= row.claimed_until <= latest, (earliest, latest)
    assert store.claim("relay-b", 10, LEASE) == []  # the lease holds against another relay
